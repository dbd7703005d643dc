import { parseEnvelope } from './envelope';
import { RawNumber } from '../../util/pyjson';

const auth = '{"cost": 100.0, "endpoint": "e", "reqnum": 4, "request_idx": 35, "signature": "c2ln", "url": "http://x:1"}';

test('a valid envelope; raw auth_data keeps the cost token', () => {
  const result = parseEnvelope(`{"auth_data": ${auth}, "session_id": null, "payload": {"input": {}}}`);
  if (!result.ok) throw new Error(JSON.stringify(result.body));
  expect(result.envelope.auth.reqnum).toBe(4);
  expect(result.envelope.rawAuth().cost).toEqual(new RawNumber('100.0'));
  expect(result.envelope.sessionId).toBeNull();
  expect(result.envelope.payload).toEqual({ input: {} });
});

test('auth_data after a payload full of quotes, braces and escapes is still found', () => {
  const payload = JSON.stringify({
    input: { s: 'a "quoted" {brace} [bracket] \\ "auth_data": {"cost": 1}', n: [1, { x: '}' }] },
  });
  const result = parseEnvelope(`{"payload": ${payload}, "auth_data": ${auth}}`);
  if (!result.ok) throw new Error(JSON.stringify(result.body));
  expect(result.envelope.rawAuth().cost).toEqual(new RawNumber('100.0'));
  expect(result.envelope.rawAuth().request_idx).toEqual(new RawNumber('35'));
});

test.each([
  ['not JSON', '{', { error: 'invalid JSON' }],
  ['an array', '[]', { auth_data: 'field missing', payload: 'field missing' }],
  ['no payload', `{"auth_data": ${auth}}`, { payload: 'field missing' }],
  ['payload not a dict', `{"auth_data": ${auth}, "payload": "x"}`, { payload: { data: 'payload must be a dictionary' } }],
  [
    'missing auth fields',
    '{"auth_data": {"cost": 1}, "payload": {}}',
    {
      auth_data: {
        endpoint: 'missing parameter',
        reqnum: 'missing parameter',
        request_idx: 'missing parameter',
        signature: 'missing parameter',
        url: 'missing parameter',
      },
    },
  ],
  ['bad session id', `{"auth_data": ${auth}, "payload": {}, "session_id": 5}`, { session_id: 'must be a string or null' }],
])('%s → 422 %j', (_what, text, body) => {
  const result = parseEnvelope(text);
  expect(result).toEqual({ ok: false, status: 422, body });
});
