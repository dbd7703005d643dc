// The command line: `comfyui-worker submit | status | cancel | serve` (README: "Command-line
// client"). Exit codes are in exit-codes.ts.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { WorkerClient } from './client';
import { CliError, EXIT } from './exit-codes';
import { outputItems } from './outputs';
import { describe as describeStatus } from './progress';
import { serve } from './serve';
import { finish, submit, type Io } from './submit';

const DEFAULT_URL = 'http://127.0.0.1:8000';

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number of seconds above 0');
  return n;
}

const collect = (value: string, previous: string[]) => [...previous, value];

function connectionOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', "the worker's address").env('COMFYUI_WORKER_URL').default(DEFAULT_URL))
    .addOption(new Option('--api-key <key>', "the worker's API_KEY (sent as a Bearer token)").env('COMFYUI_WORKER_API_KEY'));
}

/** Runs the command line; resolves with the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  let code: number = EXIT.done;
  const program = new Command('comfyui-worker')
    .description('ComfyUI worker: with no command (or `serve`) start the worker; otherwise a client of a running one')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 done, 1 unexpected error, 2 invalid input (or refused by the worker), 3 job failed or cancelled,\n' +
        '4 worker unreachable, 5 --timeout passed (job cancelled), 130 interrupted (job cancelled).',
    );

  connectionOptions(
    program
      .command('submit')
      .description('run a workflow file (API format) or a modifier, show its progress and write its output files')
      .argument('[workflow]', "workflow file in ComfyUI's API format")
      .option('--image <name=path|url>', 'an input image (repeatable); a bare path is named after its file', collect, [])
      .option('--modifier <name>', 'a modifier template instead of a workflow file (e.g. Text2Image)')
      .option('--set <key=value>', 'a modifier value (repeatable); JSON when it parses, else text', collect, [])
      .option('--out <dir>', 'where the output files go', '.')
      .option('--timeout <s>', 'give up (and cancel the job) after this many seconds', seconds),
  ).action(async (workflow: string | undefined, o: Record<string, unknown>) => {
    code = await submit(
      {
        workflowFile: workflow,
        modifier: o.modifier as string | undefined,
        sets: o.set as string[],
        images: o.image as string[],
        out: o.out as string,
        timeoutS: o.timeout as number | undefined,
        url: o.url as string,
        apiKey: o.apiKey as string | undefined,
      },
      io,
    );
  });

  connectionOptions(
    program
      .command('status')
      .description("show a job's status; with --out, write a completed job's files")
      .argument('<id>', 'the job id')
      .option('--out <dir>', "write a completed job's output files here")
      .option('--json', "print the worker's /status answer as it is"),
  ).action(async (id: string, o: Record<string, unknown>) => {
    const client = new WorkerClient({ url: o.url as string, apiKey: o.apiKey as string | undefined });
    const status = await client.status(id);
    if (o.json) io.out(`${JSON.stringify(status, null, 2)}\n`);
    if (status.status === 'completed' || status.status === 'failed' || status.status === 'cancelled') {
      if (status.status === 'completed' && o.out === undefined) {
        const names = outputItems(status.result).map((i) => i.filename ?? `(text from node ${i.nodeId})`);
        if (!o.json) io.out(`job ${id}: completed; outputs: ${names.join(', ') || 'none'}\n`);
        return;
      }
      code = await finish(client, status, (o.out as string | undefined) ?? '.', io);
      return;
    }
    const d = describeStatus(status, {});
    if (!o.json)
      io.out(`job ${id}: ${d.phase}${d.phase === 'running' ? ` ${d.percentage}%` : ''}${d.detail ? `, ${d.detail}` : ''}\n`);
  });

  connectionOptions(
    program.command('cancel').description('cancel a queued or running job').argument('<id>', 'the job id'),
  ).action(async (id: string, o: Record<string, unknown>) => {
    const client = new WorkerClient({ url: o.url as string, apiKey: o.apiKey as string | undefined });
    const answer = await client.cancel(id);
    io.out(`${answer.message ?? JSON.stringify(answer)}\n`);
  });

  program
    .command('serve', { isDefault: true })
    .description('start the worker (the default); --simulate runs it against the ComfyUI simulator')
    .option('--simulate', 'use the built-in ComfyUI simulator (no GPU, placeholder images)')
    .action(async (o: { simulate?: boolean }) => {
      code = await serve(o.simulate ? ['--simulate'] : []);
    });

  // Anything else than an option or a command would fall to the default command (serve).
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-') && !program.commands.some((c) => c.name() === first) && first !== 'help') {
    io.err(`error: unknown command '${first}'\n`);
    program.outputHelp({ error: true });
    return EXIT.invalidInput;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.done : EXIT.invalidInput;
    if (err instanceof CliError) {
      io.err(`error: ${err.message}\n`);
      if (err.details) io.err(`${err.details}\n`);
      return err.exitCode;
    }
    io.err(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.internal;
  }
  return code;
}

/** The `comfyui-worker` binary (cli/bin.js). */
export function main(): void {
  const interrupt = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    // A second Ctrl-C does not wait for the job to be cancelled.
    if (interrupted) process.exit(EXIT.interrupted);
    interrupted = true;
    interrupt.abort();
  };
  const args = process.argv.slice(2);
  // `serve` forwards signals to the worker itself.
  const serving = args.length === 0 || args[0] === 'serve' || args[0] === '--simulate';
  if (!serving) process.on('SIGINT', onSigint);
  const io: Io = {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    tty: Boolean(process.stderr.isTTY),
    errStream: process.stderr,
    interrupt: interrupt.signal,
  };
  void run(args, io).then((code) => {
    process.exitCode = code;
    // Idle keep-alive sockets must not hold the process.
    setTimeout(() => process.exit(code), 200).unref();
  });
}
