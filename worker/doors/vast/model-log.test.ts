import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../observability/logger';
import { classifyLine, hasToken, ModelLogError, ModelLogTimeout, waitForModelLog } from './model-log';

test.each([
  ['BACKENDS_READY: 1 backend(s) reachable, ready to serve', 'BACKENDS_READY', true],
  ['BACKENDS_READY_TIMEOUT: none reachable', 'BACKENDS_READY', false],
  ['xBACKENDS_READY', 'BACKENDS_READY', false],
  ['[BACKENDS_READY]', 'BACKENDS_READY', true],
  ['BACKENDS_READY_TIMEOUT then BACKENDS_READY', 'BACKENDS_READY', true],
  ['To see the GUI go to: http://127.0.0.1:8188', 'To see the GUI go to: ', true],
  ['INFO:     Application startup failed. Exiting.', 'Application startup failed', true],
  ['backends_ready', 'BACKENDS_READY', false],
])('%s has %s: %s', (line, token, expected) => {
  expect(hasToken(line, token)).toBe(expected);
});

test('error strings win over load strings on the same line', () => {
  const onLoad = ['BACKENDS_READY'];
  const onError = ['BACKENDS_READY_TIMEOUT'];
  expect(classifyLine('BACKENDS_READY_TIMEOUT after 600s', onLoad, onError)).toEqual({
    kind: 'error',
    token: 'BACKENDS_READY_TIMEOUT',
  });
  expect(classifyLine('BACKENDS_READY: ok', onLoad, onError)).toEqual({ kind: 'load', token: 'BACKENDS_READY' });
  expect(classifyLine('nothing here', onLoad, onError)).toBeUndefined();
});

describe('waitForModelLog is bounded', () => {
  const logger = createLogger('silent');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-log-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const opts = (file: string) => ({
    path: file,
    onLoad: ['BACKENDS_READY'],
    onError: ['BACKENDS_READY_TIMEOUT'],
    logger,
    timeoutMs: 300,
    pollMs: 20,
  });

  test('a log that never shows the load token → ModelLogTimeout naming the file and the token', async () => {
    const file = path.join(dir, 'quiet.log');
    fs.writeFileSync(file, 'starting\nBACKENDS_READY_SOON\n');
    const waited = waitForModelLog(opts(file), new AbortController().signal);
    await expect(waited).rejects.toThrow(ModelLogTimeout);
    await expect(waited).rejects.toThrow(`MODEL_LOG ${file} did not show "BACKENDS_READY" within 0 s (COMFY_READY_TIMEOUT_S)`);
  });

  test('a log file that never appears → ModelLogTimeout', async () => {
    const file = path.join(dir, 'never.log');
    await expect(waitForModelLog(opts(file), new AbortController().signal)).rejects.toThrow(
      `MODEL_LOG ${file} did not appear within 0 s (COMFY_READY_TIMEOUT_S)`,
    );
  });

  test('the token arriving before the deadline still loads; an error line still wins', async () => {
    const file = path.join(dir, 'late.log');
    fs.writeFileSync(file, 'starting\n');
    const waited = waitForModelLog({ ...opts(file), timeoutMs: 5_000 }, new AbortController().signal);
    setTimeout(() => fs.appendFileSync(file, 'BACKENDS_READY: 1 backend(s) reachable\n'), 100);
    await expect(waited).resolves.toBeUndefined();
    const failing = path.join(dir, 'failing.log');
    fs.writeFileSync(failing, 'BACKENDS_READY_TIMEOUT: none\n');
    await expect(waitForModelLog(opts(failing), new AbortController().signal)).rejects.toThrow(ModelLogError);
  });
});
