// Request credentials through the job API: used for the prompt, never stored in plaintext, never
// answered by /status, /stats or /result, and purged when the job ends.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startSimulator, type Simulator } from '../../simulator';
import { tempDir } from '../support/tmp';
import { saveWorkflow } from '../support/workflows';
import { callJson, postJson, startTestWorker, type TestWorker } from '../support/worker';
import { waitForStatus } from './support';

const ORG_KEY = 'comfy-org-SECRET-a1b2c3d4e5f6';

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 2 });
});
afterAll(() => sim?.close());

/** Every byte the database keeps on disk: the file and its write-ahead log. */
function databaseBytes(dbPath: string): Buffer {
  return Buffer.concat([dbPath, `${dbPath}-wal`].filter((file) => fs.existsSync(file)).map((file) => fs.readFileSync(file)));
}

function secretsColumn(dbPath: string, id: string): Buffer | null {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT secrets FROM jobs WHERE id = ?').get(id) as { secrets: Buffer | null }).secrets;
  } finally {
    db.close();
  }
}

describe('with the key file the worker creates', () => {
  let worker: TestWorker;
  beforeAll(async () => {
    worker = await startTestWorker(sim.url);
  });
  afterAll(() => worker?.stop());

  test('the key file is created beside the database with mode 0600', () => {
    const keyFile = path.join(path.dirname(worker.dbPath), 'job-secrets.key');
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  test.each([
    ['worker-comfyui form', (key: string) => ({ input: { workflow: saveWorkflow('sec'), comfy_org_api_key: key } })],
    ['wrapper form', (key: string) => ({ input: { workflow_json: saveWorkflow('sec'), api_key_comfy_org: key } })],
  ])('%s: used for the prompt, sealed while pending, purged at the end, never answered', async (_name, body) => {
    const key = `${ORG_KEY}-${Math.random().toString(36).slice(2)}`;
    worker.runner.pause();
    const id = (await postJson(`${worker.url}/run`, body(key))).body.job_id;
    // While it waits: sealed in the database, never in plaintext, not in any answer.
    expect(secretsColumn(worker.dbPath, id)).not.toBeNull();
    expect(databaseBytes(worker.dbPath).includes(key)).toBe(false);
    const answers = [
      await callJson('GET', `${worker.url}/status/${id}`),
      await callJson('GET', `${worker.url}/stats?include_recent=true`),
      await callJson('GET', `${worker.url}/result/${id}`),
    ];
    for (const answer of answers) expect(JSON.stringify(answer.body)).not.toContain(key);

    worker.runner.resume();
    const done = await waitForStatus(worker.url, id);
    expect(done.status).toBe('completed');
    expect(JSON.stringify(done)).not.toContain(key);
    const prompt = sim.prompts.find((p) => JSON.stringify(p.body).includes(key));
    expect((prompt?.body as { extra_data?: unknown }).extra_data).toEqual({ api_key_comfy_org: key });
    expect(secretsColumn(worker.dbPath, id)).toBeNull();
    expect(databaseBytes(worker.dbPath).includes(key)).toBe(false);
  });

  test('a failed job purges its credentials too', async () => {
    const key = `${ORG_KEY}-failed`;
    const wf = saveWorkflow('sec', { '3': { class_type: 'Nope', inputs: {} } });
    const id = (await postJson(`${worker.url}/run`, { input: { workflow: wf, comfy_org_api_key: key } })).body.job_id;
    expect((await waitForStatus(worker.url, id)).status).toBe('failed');
    expect(secretsColumn(worker.dbPath, id)).toBeNull();
  });
});

test('JOB_SECRETS_KEY: no key file; a job sealed with another key fails clearly and is never sent', async () => {
  const dir = tempDir('secrets-');
  const dbPath = path.join(dir, 'jobs.db');
  const first = await startTestWorker(sim.url, { SQLITE_DB_PATH: dbPath, JOB_SECRETS_KEY: 'first passphrase' });
  first.runner.pause();
  const id = (await postJson(`${first.url}/run`, { input: { workflow: saveWorkflow('rekey'), comfy_org_api_key: ORG_KEY } })).body
    .job_id;
  await first.stop();
  expect(fs.existsSync(path.join(dir, 'job-secrets.key'))).toBe(false);

  const second = await startTestWorker(sim.url, { SQLITE_DB_PATH: dbPath, JOB_SECRETS_KEY: 'another passphrase' });
  try {
    const final = await waitForStatus(second.url, id);
    expect(final.status).toBe('failed');
    expect(final.error).toContain('sealed with another JOB_SECRETS_KEY');
    expect(final.error).not.toContain(ORG_KEY);
    expect(sim.prompts.some((p) => JSON.stringify(p.body).includes('rekey_'))).toBe(false);
    expect(secretsColumn(dbPath, id)).toBeNull();
  } finally {
    await second.stop();
  }
});

test('the same JOB_SECRETS_KEY after a restart: the job runs with its credentials', async () => {
  const dbPath = path.join(tempDir('secrets-'), 'jobs.db');
  const env = { SQLITE_DB_PATH: dbPath, JOB_SECRETS_KEY: 'c'.repeat(64) };
  const first = await startTestWorker(sim.url, env);
  first.runner.pause();
  const key = `${ORG_KEY}-kept`;
  const id = (await postJson(`${first.url}/run`, { workflow: saveWorkflow('kept'), comfy_org_api_key: key })).body.job_id;
  await first.stop();
  const second = await startTestWorker(sim.url, env);
  try {
    expect((await waitForStatus(second.url, id)).status).toBe('completed');
    const prompt = sim.prompts.find((p) => JSON.stringify(p.body).includes('kept_'));
    expect((prompt?.body as { extra_data?: unknown }).extra_data).toEqual({ api_key_comfy_org: key });
  } finally {
    await second.stop();
  }
});
