// Helpers of the standalone job API tests.
import { callJson, until } from '../support/worker';

export { slowWorkflow } from '../support/workflows';

export const TERMINAL = ['completed', 'failed', 'cancelled'];

/** Polls GET /status/{id} until the job is in one of `statuses`; returns the last body. */
export async function waitForStatus(
  baseUrl: string,
  id: string,
  statuses: string[] = TERMINAL,
  timeoutMs = 15_000,
  headers: Record<string, string> = {},
): Promise<any> {
  let body: any;
  await until(
    async () => {
      const res = await callJson('GET', `${baseUrl}/status/${id}`, undefined, headers);
      body = res.body;
      return res.status === 200 && statuses.includes(body.status);
    },
    timeoutMs,
    `job ${id} to be ${statuses.join('|')}`,
  );
  return body;
}

/** The filename_prefix values of the prompts a simulator accepted. */
export function submittedPrefixes(prompts: Array<{ body: unknown }>): string[] {
  return prompts.flatMap((p) => {
    const prompt = (p.body as { prompt?: Record<string, { inputs?: { filename_prefix?: unknown } }> }).prompt ?? {};
    return Object.values(prompt).flatMap((node) =>
      typeof node.inputs?.filename_prefix === 'string' ? [node.inputs.filename_prefix] : [],
    );
  });
}
