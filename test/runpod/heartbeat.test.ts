// The heartbeat runs in a worker thread: job work on the main thread (here: the main thread
// blocked outright) never holds a ping back. The pings are received by a server in another
// process, which stamps their arrival, so the proof does not depend on this thread at all.
import { spawn, type ChildProcess } from 'node:child_process';
import { Heartbeat, type PingReport } from '../../worker/doors/runpod/heartbeat';
import { createLogger } from '../../worker/observability/logger';
import { until } from '../support/worker';

// A ping recorder: answers 200 and keeps [arrival ms, url, authorization] of every request;
// GET /log returns them.
const RECORDER = `
const http = require('node:http');
const log = [];
const server = http.createServer((req, res) => {
  if (req.url === '/log') return res.end(JSON.stringify(log));
  log.push([Date.now(), req.url, req.headers.authorization]);
  res.end();
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

let recorder: ChildProcess;
let base: string;

beforeAll(async () => {
  recorder = spawn(process.execPath, ['-e', RECORDER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the recorder did not start')), 10_000);
    recorder.stdout?.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolve(chunk.toString().trim());
    });
  });
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => {
  recorder.kill('SIGKILL');
});

async function received(): Promise<Array<[number, string, string | undefined]>> {
  return (await (await fetch(`${base}/log`)).json()) as Array<[number, string, string | undefined]>;
}

test('pings keep going out, carrying the job in flight, while the main thread is blocked', async () => {
  const reports: PingReport[] = [];
  const heartbeat = new Heartbeat({
    url: `${base}/v2/ep/ping/pod-1?gpu=X`,
    intervalMs: 100,
    headers: { Authorization: 'rpa_KEY' },
    version: '1.12.0',
    logger: createLogger('silent'),
    onReport: (r) => reports.push(r),
  });
  heartbeat.start();
  try {
    heartbeat.setJobs(['job-a']);
    await until(async () => (await received()).some(([, url]) => url.includes('job_id=job-a')), 10_000, 'a ping with the job');

    // What a long synchronous piece of job work would do to timers on this thread.
    const blockedFrom = Date.now();
    while (Date.now() - blockedFrom < 1_500) {
      // busy
    }
    const blockedTo = Date.now();

    const during = (await received()).filter(([at]) => at > blockedFrom && at < blockedTo);
    expect(during.length).toBeGreaterThanOrEqual(3);
    for (const [, url, authorization] of during) {
      expect(url).toBe('/v2/ep/ping/pod-1?gpu=X&job_id=job-a&runpod_version=1.12.0');
      expect(authorization).toBe('rpa_KEY');
    }

    // Without a job in flight the pings carry no job_id.
    heartbeat.setJobs([]);
    const from = Date.now();
    await until(
      async () => (await received()).some(([at, url]) => at > from + 50 && !url.includes('job_id')),
      10_000,
      'a ping without job',
    );
    expect(reports.some((r) => r.type === 'ping' && r.status === 200)).toBe(true);
  } finally {
    await heartbeat.stop();
  }
  // Stopped: no more pings.
  const count = (await received()).length;
  await new Promise((r) => setTimeout(r, 400));
  expect((await received()).length).toBe(count);
});
