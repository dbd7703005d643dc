// `comfyui-worker` with no command (or `serve`) starts the worker itself, and passes a SIGTERM or
// Ctrl-C on to it once, so that it stops cleanly and the CLI exits with its status.
import path from 'node:path';
import { tempDir } from '../support/tmp';
import { callJson, until } from '../support/worker';
import { startCli } from './support';

for (const [name, args, signal] of [
  ['no command, SIGTERM', ['--simulate'], 'SIGTERM'],
  ['serve, Ctrl-C', ['serve', '--simulate'], 'SIGINT'],
] as const) {
  test(`${name}: the worker runs, stops cleanly, exit 0`, async () => {
    const cli = startCli([...args], {
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      SQLITE_DB_PATH: path.join(tempDir('cli-serve-'), 'jobs.db'),
      LOG_LEVEL: 'info',
    });
    let output = '';
    cli.child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    await until(() => output.includes('"ComfyUI is ready"'), 15_000, 'the worker ready on the simulator');
    const started = output.split('\n').find((l) => l.includes('"worker started"'))!;
    const url = (JSON.parse(started) as { url: string }).url;
    expect(JSON.parse(started)).toMatchObject({ exposedGc: true }); // serve passes --expose-gc
    expect((await callJson('GET', `${url}/health`)).status).toBe(200);
    cli.child.kill(signal);
    const run = await cli.done;
    expect(run.code).toBe(0);
    // One signal reached the worker: it logged a clean stop, not a second, fatal one.
    expect(output.match(/"msg":"stopping"/g)).toHaveLength(1);
    expect(output).toContain(`"signal":"${signal}"`);
  });
}
