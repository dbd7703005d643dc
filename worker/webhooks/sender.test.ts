import path from 'node:path';
import { tempDir } from '../../test/support/tmp';
import { JobEvents } from '../jobs/events';
import { SecretBox } from '../secrets/secret-box';
import { SqliteJobStore } from '../jobs/sqlite/store';
import { createLogger } from '../observability/logger';
import { createOutboundClient } from '../net/outbound';
import { WebhookSender } from './sender';

test('a delivery that fails for a reason of ours (not the receiver) is retried a minute later, not in a loop', async () => {
  // A controlled clock (Date and timers), so "a minute later" is checked to the millisecond.
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  const dir = tempDir('sender-');
  const store = new SqliteJobStore({
    path: path.join(dir, 'jobs.db'),
    secrets: SecretBox.open({ keyFile: path.join(dir, 'key') }),
  });
  const spec = {
    workflow: {},
    images: [],
    includeTempOutputs: false,
    forceBase64: false,
    includeComfyResponse: false,
    allowPartial: false,
  };
  await store.insert({
    id: 'j1',
    source: 'http',
    contract: 'wrapper',
    sync: false,
    spec: { ...spec, webhook: { url: 'http://127.0.0.1:9/h', extraParams: {}, signed: false } },
  });
  await store.finish('j1', 'failed', { error: { code: 'internal', message: 'x', status: 500 } });
  let renders = 0;
  const outbox = store.webhooks;
  const sender = new WebhookSender({
    outbox,
    store,
    events: new JobEvents(),
    client: createOutboundClient({ allowPrivate: true }),
    policy: { retries: 5, baseS: 0.01, maxS: 0.01 },
    timeoutS: 1,
    envSecret: undefined,
    render: () => {
      renders += 1;
      throw new Error('cannot render');
    },
    logger: createLogger('silent'),
  });
  try {
    sender.start();
    await settle();
    expect(renders).toBe(1);
    expect(await outbox.state('j1')).toMatchObject({ status: 'pending', attempts: 0 });
    // Not again within the minute...
    jest.advanceTimersByTime(59_999);
    await settle();
    expect(renders).toBe(1);
    // ...and once when it has passed.
    jest.advanceTimersByTime(1);
    await settle();
    expect(renders).toBe(2);
    expect(await outbox.state('j1')).toMatchObject({ status: 'pending', attempts: 0 });
  } finally {
    sender.stop();
    await store.close();
    jest.useRealTimers();
  }
});
