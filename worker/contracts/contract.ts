// What a contract is: a wire format a job can be answered in, whichever door accepted it. A door
// parses requests with a contract's own parser (request.ts / input.ts) and stores the contract's
// name with the job; /status, /result and webhooks then render the job through the contract.
import type { JobOutput, JobRecord } from '../jobs/types';
import type { ContractView } from '../webhooks/payload';

/** base64 of an output's stored bytes, when they are kept for inline delivery. */
export type FileData = (output: JobOutput) => string | undefined;

export interface Contract {
  readonly name: string;
  /** The `result` of GET /status for a completed job. */
  statusResult(job: JobRecord, fileData: FileData): unknown;
  /** The job as a webhook shows it (message, output, timings). */
  webhookView(job: JobRecord, fileData: FileData): ContractView;
}
