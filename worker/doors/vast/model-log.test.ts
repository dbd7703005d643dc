import { classifyLine, hasToken } from './model-log';

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
