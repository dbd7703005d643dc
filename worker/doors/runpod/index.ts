// Starts the RunPod door (WORKER_MODE=runpod, or RUNPOD_WEBHOOK_GET_JOB / SERVE_API_LOCALLY set):
// a drop-in for RunPod's worker-comfyui, speaking the worker-comfyui contract.
//   - RUNPOD_WEBHOOK_GET_JOB set: the serverless job loop against RunPod's job queue;
//   - else SERVE_API_LOCALLY=true: the local test API on API_HOST:API_PORT.
// NETWORK_VOLUME_DEBUG=true adds the model-folder report at startup and on a missing model.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { ConfigError } from '../../config';
import type { JobRecord } from '../../jobs/types';
import { createOutboundClient } from '../../net/outbound';
import type { DoorHandle, StartDoor } from '../door';
import { ANSWER_DRAIN_MS, close, listen } from '../listen';
import { fromDoor, type RunpodContext } from './context';
import { ControlPlane, RUNPOD_PROTOCOL_VERSION } from './control-plane';
import { Heartbeat } from './heartbeat';
import { Inbox } from './inbox';
import { LocalApi } from './local-api';
import { ServerlessDoor } from './serverless';
import { runpodUrls } from './urls';
import { missingModelInputs, volumeReport } from './volume-debug';

/** Starts the volume report; returns what stops it. */
function watchVolume(ctx: RunpodContext): () => void {
  const volume = ctx.config.runpod.networkVolumePath;
  ctx.logger.info({ report: volumeReport(volume) }, 'NETWORK_VOLUME_DEBUG: network volume at startup');
  const onFinished = (job: JobRecord) => {
    const inputs = missingModelInputs(job);
    if (inputs.length === 0) return;
    ctx.logger.warn(
      { requestId: job.id, inputs, report: volumeReport(volume) },
      'NETWORK_VOLUME_DEBUG: a job named a model ComfyUI does not offer; what the network volume holds',
    );
  };
  ctx.events.on('finished', onFinished);
  return () => ctx.events.off('finished', onFinished);
}

function startServerless(ctx: RunpodContext, getJobUrl: string): DoorHandle {
  const rp = ctx.config.runpod;
  if (rp.postOutputUrl === undefined) {
    throw new ConfigError('RUNPOD_WEBHOOK_POST_OUTPUT is not set: the RunPod door cannot post results without it');
  }
  // The SDK's worker id: RUNPOD_POD_ID, else a random one for this process.
  const workerId = rp.podId ?? randomUUID();
  const urls = runpodUrls({ getJob: getJobUrl, postOutput: rp.postOutputUrl, ping: rp.pingUrl }, workerId);
  const plane = new ControlPlane(rp.apiKey);
  // As the SDK: no heartbeat without an API key, a worker id and a ping URL.
  const heartbeat =
    urls.ping !== undefined && rp.apiKey !== undefined && rp.podId !== undefined
      ? new Heartbeat({
          url: urls.ping,
          intervalMs: rp.pingIntervalMs,
          headers: plane.baseHeaders,
          version: RUNPOD_PROTOCOL_VERSION,
          logger: ctx.logger,
        })
      : undefined;
  const door = new ServerlessDoor(ctx, {
    urls,
    plane,
    inbox: new Inbox(path.join(path.dirname(ctx.config.jobs.dbPath), 'runpod-taken')),
    heartbeat,
    workerId,
    progressIntervalMs: rp.progressIntervalMs,
    resultAttempts: rp.resultAttempts,
    resultBackoffMs: rp.resultBackoffMs,
    stopGraceMs: rp.stopGraceMs,
    refreshWorker: rp.refreshWorker,
  });
  door.start();
  ctx.logger.info(
    {
      workerId,
      endpointId: rp.endpointId,
      hostname: rp.podHostname,
      heartbeat: heartbeat !== undefined,
      jobStop: urls.stop !== undefined,
      refreshWorker: rp.refreshWorker,
      // For the script that launches ComfyUI; this worker does not launch it.
      comfyLogLevel: ctx.config.comfy.logLevel,
    },
    'runpod door started: serverless job loop',
  );
  // The job loop ends its job itself, within RUNPOD_STOP_GRACE_S, and posts its result.
  return { url: `runpod://${workerId}`, drain: () => door.stop(), stop: () => door.stop() };
}

async function startLocal(ctx: RunpodContext): Promise<DoorHandle> {
  const api = new LocalApi(ctx, { outbound: createOutboundClient({ allowPrivate: ctx.config.inputs.allowPrivateUrls }) });
  const server = api.createServer(ctx.config.http.maxBodyBytes, ctx.config.http.limits);
  let url: string;
  try {
    url = await listen(server, ctx.config.http.host, ctx.config.http.port, 'API_HOST/API_PORT');
  } catch (err) {
    await api.stop();
    throw err;
  }
  ctx.logger.info({ url, comfyLogLevel: ctx.config.comfy.logLevel }, 'runpod door started: local test API (SERVE_API_LOCALLY)');
  return {
    url,
    stop: async () => {
      await close(server, ANSWER_DRAIN_MS);
      await api.stop();
    },
  };
}

export const startRunpodDoor: StartDoor = async (core) => {
  const ctx = fromDoor(core);
  const rp = ctx.config.runpod;
  if (rp.getJobUrl === undefined && !rp.serveApiLocally) {
    throw new ConfigError(
      'WORKER_MODE=runpod needs RUNPOD_WEBHOOK_GET_JOB (the serverless job loop; RunPod sets it) or SERVE_API_LOCALLY=true (the local test API)',
    );
  }
  const unwatch = rp.networkVolumeDebug ? watchVolume(ctx) : () => undefined;
  let door: DoorHandle;
  try {
    door = rp.getJobUrl !== undefined ? startServerless(ctx, rp.getJobUrl) : await startLocal(ctx);
  } catch (err) {
    unwatch();
    throw err;
  }
  return {
    url: door.url,
    drain: door.drain,
    stop: async () => {
      await door.stop();
      unwatch();
    },
  };
};
