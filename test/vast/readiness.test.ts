// Readiness on the Vast door: MODEL_LOG with whole-token matching, the benchmark workflow from
// BENCHMARK_JSON_PATH (and its node classes checked against /object_info), and HTTPS serving.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { tempDir } from '../support/tmp';
import { getJson, until } from '../support/worker';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { startVastWorker, withVastWorker, type VastTestWorker } from './support/vast-worker';

const FIXTURES = path.join(__dirname, 'fixtures');

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ stepDelayMs: 5 });
});
afterAll(async () => {
  await sim?.close();
});

const withWorker = (
  env: Record<string, string>,
  body: (w: VastTestWorker, f: FakeAutoscaler) => Promise<void>,
  cachedMaxPerf?: number,
) => withVastWorker(sim.url, env, body, cachedMaxPerf);

const loaded = (f: FakeAutoscaler) => f.statusReports.some((r) => r.body.max_perf > 0);
const errorMsg = (f: FakeAutoscaler) =>
  f.statusReports.find((r) => r.body.error_msg !== '')?.body.error_msg as string | undefined;

describe('MODEL_LOG', () => {
  test('loaded only after the on-load token appears as a whole token', async () => {
    const log = path.join(tempDir('log-'), 'api-wrapper.log');
    fs.writeFileSync(log, 'starting backends\nBACKENDS_READY_SOON is not the token\n');
    await withWorker(
      { MODEL_LOG: log },
      async (w, f) => {
        await until(() => f.statusReports.length > 0, 5_000, 'first report');
        await new Promise((r) => setTimeout(r, 600));
        expect(loaded(f)).toBe(false);
        expect((await getJson(`${w.url}/benchmark`)).body.status).toBe('pending');
        fs.appendFileSync(log, 'BACKENDS_READY: 1 backend(s) reachable, ready to serve\n');
        await until(() => loaded(f), 5_000, 'loaded');
        expect(errorMsg(f)).toBeUndefined();
      },
      50,
    );
  });

  test('BACKENDS_READY_TIMEOUT is an error, not a load (error tokens first, whole tokens)', async () => {
    const log = path.join(tempDir('log-'), 'api-wrapper.log');
    fs.writeFileSync(log, 'BACKENDS_READY_TIMEOUT: no backend reachable after 600s\n');
    await withWorker(
      { MODEL_LOG: log },
      async (_w, f) => {
        await until(() => errorMsg(f) !== undefined, 5_000, 'an error report');
        expect(errorMsg(f)).toBe('BACKENDS_READY_TIMEOUT');
        expect(loaded(f)).toBe(false);
      },
      50,
    );
  });

  test('a log that never shows the on-load token → error report after COMFY_READY_TIMEOUT_S', async () => {
    const log = path.join(tempDir('log-'), 'api-wrapper.log');
    fs.writeFileSync(log, 'starting backends\n');
    await withWorker(
      { MODEL_LOG: log, COMFY_READY_TIMEOUT_S: '1' },
      async (w, f) => {
        await until(() => errorMsg(f) !== undefined, 5_000, 'an error report');
        expect(errorMsg(f)).toBe(`MODEL_LOG ${log} did not show "BACKENDS_READY" within 1 s (COMFY_READY_TIMEOUT_S)`);
        expect(loaded(f)).toBe(false);
        expect((await getJson(`${w.url}/benchmark`)).body.status).toBe('pending'); // never started
      },
      50,
    );
  });

  test('custom tokens (MODEL_LOG_ON_LOAD / MODEL_LOG_ON_ERROR)', async () => {
    const log = path.join(tempDir('log-'), 'comfyui.log');
    fs.writeFileSync(log, 'To see the GUI go to: http://127.0.0.1:18188\n');
    await withWorker(
      { MODEL_LOG: log, MODEL_LOG_ON_LOAD: 'To see the GUI go to: ', MODEL_LOG_ON_ERROR: 'MetadataIncompleteBuffer' },
      async (_w, f) => {
        await until(() => loaded(f), 5_000, 'loaded');
      },
      50,
    );
  });
});

describe('BENCHMARK_JSON_PATH', () => {
  test('a workflow file is benchmarked (seeds randomised per run) and shown by GET /benchmark', async () => {
    const file = path.join(tempDir('bench-'), 'bench.json');
    const workflow = {
      '1': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'v1-5-pruned-emaonly-fp16.safetensors' } },
      '3': { class_type: 'CLIPTextEncode', inputs: { text: 'a cat', clip: ['2', 1] } },
      '4': {
        class_type: 'KSampler',
        inputs: {
          seed: 5,
          steps: 2,
          cfg: 8,
          sampler_name: 'euler',
          scheduler: 'normal',
          denoise: 1,
          model: ['2', 0],
          positive: ['3', 0],
          negative: ['3', 0],
          latent_image: ['1', 0],
        },
      },
      '5': { class_type: 'VAEDecode', inputs: { samples: ['4', 0], vae: ['2', 2] } },
      '6': { class_type: 'SaveImage', inputs: { images: ['5', 0], filename_prefix: 'bench' } },
    };
    fs.writeFileSync(file, JSON.stringify(workflow));
    const before = sim.prompts.length;
    await withWorker({ BENCHMARK_JSON_PATH: file }, async (w, f) => {
      await until(() => loaded(f), 10_000, 'loaded');
      const prompts = sim.prompts.slice(before).filter((p) => JSON.stringify(p.body).includes('"bench_'));
      expect(prompts).toHaveLength(3); // warm-up + 2 runs
      const seeds = prompts.map((p) => (p.body as any).prompt['4'].inputs.seed);
      expect(new Set(seeds).size).toBe(3);
      const bench = await getJson(`${w.url}/benchmark`);
      expect(bench.body.workflow).toBe(`workflow ${file}`);
      expect(bench.body.runs.every((r: any) => r.ok && r.sampler_steps === 2)).toBe(true);
    });
  });

  test('a node class ComfyUI does not have → error naming it (no run is attempted)', async () => {
    const file = path.join(tempDir('bench-'), 'bench.json');
    fs.writeFileSync(file, JSON.stringify({ '1': { class_type: 'NoSuchNode', inputs: {} } }));
    const before = sim.prompts.length;
    await withWorker({ BENCHMARK_JSON_PATH: file }, async (_w, f) => {
      await until(() => errorMsg(f) !== undefined, 5_000, 'an error report');
      expect(errorMsg(f)).toContain('ComfyUI has no node class NoSuchNode');
      expect(sim.prompts.length).toBe(before);
    });
  });

  test('an unreadable file → error naming BENCHMARK_JSON_PATH', async () => {
    await withWorker({ BENCHMARK_JSON_PATH: path.join(tempDir('bench-'), 'missing.json') }, async (_w, f) => {
      await until(() => errorMsg(f) !== undefined, 5_000, 'an error report');
      expect(errorMsg(f)).toMatch(
        /^Benchmark failed with error: BENCHMARK_JSON_PATH .*missing\.json.* is not a readable JSON file/,
      );
    });
  });
});

describe('ComfyUI at startup', () => {
  test("one websocket: readiness waits for the runner's connection instead of opening its own", async () => {
    const before = sim.requests.length;
    await withWorker(
      {},
      async (w, f) => {
        await until(() => loaded(f), 5_000, 'loaded');
        expect(w.comfy.isReady).toBe(true);
        expect(sim.requests.slice(before).filter((r) => r.path === '/ws')).toHaveLength(1);
      },
      50,
    );
  });

  test('ComfyUI never reachable → error report after COMFY_READY_TIMEOUT_S saying why', async () => {
    const f = await startFakeAutoscaler();
    const w = await startVastWorker('http://127.0.0.1:1', f, { COMFY_READY_TIMEOUT_S: '1' }, { cachedMaxPerf: 50 });
    try {
      await until(() => errorMsg(f) !== undefined, 6_000, 'an error report');
      expect(errorMsg(f)).toMatch(/^ComfyUI at http:\/\/127\.0\.0\.1:1 was not ready after 1 s: \/system_stats: /);
      expect(loaded(f)).toBe(false);
    } finally {
      await w.stop();
      await f.close();
    }
  });
});

test('USE_SSL=true serves HTTPS with the certificate and reports an https url', async () => {
  const env = {
    USE_SSL: 'true',
    SSL_CERT_PATH: path.join(FIXTURES, 'instance.crt'),
    SSL_KEY_PATH: path.join(FIXTURES, 'instance.key'),
  };
  await withWorker(
    env,
    async (w, f) => {
      expect(w.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = fs.readFileSync(path.join(FIXTURES, 'instance.crt'));
      const text = await new Promise<string>((resolve, reject) => {
        https
          .get(`${w.url}/ping`, { ca }, (res) => {
            let data = '';
            res.on('data', (c) => (data += c));
            res.on('end', () => resolve(data));
          })
          .on('error', reject);
      });
      expect(text).toBe('pong');
      await until(() => loaded(f), 5_000, 'loaded');
      expect(f.statusReports[0]!.body.url).toBe('https://127.0.0.1:40123');
    },
    50,
  );
});
