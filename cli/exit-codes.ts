// The exit codes scripts can rely on (README: "Command-line client").
export const EXIT = {
  /** The job completed and every output file was written. */
  done: 0,
  /** Something unexpected (a bug, a file that could not be written). */
  internal: 1,
  /** Bad arguments, an unreadable file, or the worker refused the request (4xx: the field at fault is named). */
  invalidInput: 2,
  /** The job failed or was cancelled, or an output could not be delivered. */
  jobFailed: 3,
  /** The worker could not be reached, or answered with a server error. */
  unreachable: 4,
  /** --timeout passed before the job ended (the job is cancelled). */
  timeout: 5,
  /** Ctrl-C (SIGINT): the job is cancelled. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The CLI's one error: a message for the user and the exit code it means. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** Shown after the message (e.g. ComfyUI's node errors), already formatted. */
    readonly details?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
