// Request size limit, websocket tracing, and what never reaches the logs.
import { startSimulator, type Simulator } from '../../simulator';
import { postJson, startTestWorker } from '../support/worker';
import { saveWorkflow } from '../support/workflows';

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim?.close();
});

test('a body over MAX_BODY_MB is a 413 JSON error naming the limit', async () => {
  const worker = await startTestWorker(sim.url, { MAX_BODY_MB: '0.01' });
  try {
    const res = await postJson(`${worker.url}/generate/sync`, {
      input: { workflow_json: saveWorkflow(), pad: 'x'.repeat(20_000) },
    });
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'payload_too_large', field: 'body' });
    expect(res.body.error.message).toContain('larger than MAX_BODY_MB');
  } finally {
    await worker.stop();
  }
});

test('WEBSOCKET_TRACE=true logs every frame; off by default', async () => {
  const traced = await startTestWorker(sim.url, { WEBSOCKET_TRACE: 'true', LOG_LEVEL: 'info' }, true, { captureLogs: true });
  const quiet = await startTestWorker(sim.url, { LOG_LEVEL: 'info' }, true, { captureLogs: true });
  try {
    await postJson(`${traced.url}/generate/sync`, { input: { workflow_json: saveWorkflow('traced') } });
    await postJson(`${quiet.url}/generate/sync`, { input: { workflow_json: saveWorkflow('quiet') } });
    const frames = traced.logs.filter((l) => l.msg === 'websocket frame').map((l) => JSON.parse(l.frame as string).type);
    expect(frames).toEqual(expect.arrayContaining(['execution_start', 'executing', 'execution_success']));
    expect(quiet.logs.some((l) => l.msg === 'websocket frame')).toBe(false);
  } finally {
    await traced.stop();
    await quiet.stop();
  }
});

test('credentials from the request and the environment never reach the logs', async () => {
  const worker = await startTestWorker(
    sim.url,
    {
      LOG_LEVEL: 'trace',
      WEBSOCKET_TRACE: 'true',
      COMFY_ORG_API_KEY: 'env-org-key-123',
      WEBHOOK_SECRET: 'env-hook-secret-456',
      ALLOW_PRIVATE_URLS: 'true',
      S3_CONNECT_ATTEMPTS: '1',
    },
    true,
    { captureLogs: true },
  );
  try {
    await postJson(`${worker.url}/generate/sync`, {
      input: {
        workflow_json: saveWorkflow('secret'),
        comfy_org_api_key: 'req-org-key-789',
        s3: {
          access_key_id: 'AKIA-REQ',
          secret_access_key: 'req-s3-secret-000',
          bucket_name: 'b',
          endpoint_url: 'http://127.0.0.1:1',
        },
      },
    });
    const withComfyResponse = await postJson(
      `${worker.url}/generate/sync`,
      { input: { workflow_json: saveWorkflow('echo') } },
      { headers: { 'X-Include-ComfyUI-Response': 'true' } },
    );
    // ComfyUI's history echoes extra_data: the Comfy.org key must not come back to the client.
    expect(JSON.stringify(withComfyResponse.body.comfyui_response)).toContain('client_id');
    expect(JSON.stringify(withComfyResponse.body)).not.toContain('env-org-key-123');
    const text = JSON.stringify(worker.logs);
    expect(worker.logs.length).toBeGreaterThan(5);
    for (const secret of ['env-org-key-123', 'env-hook-secret-456', 'req-org-key-789', 'req-s3-secret-000'])
      expect(text).not.toContain(secret);
  } finally {
    await worker.stop();
  }
});
