// One webhook POST: JSON body, signature and timestamp headers, a timeout. Resolves with an error
// text (status code or network error, never the URL's credentials) or undefined on a 2xx.
import type { AxiosInstance } from 'axios';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from './sign';
import type { WebhookBody } from './payload';

/** Receivers answer with a status; a body beyond this is not read. */
const MAX_ANSWER_BYTES = 64 * 1024;

export async function postWebhook(
  client: AxiosInstance,
  url: string,
  body: WebhookBody,
  secret: string | undefined,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'User-Agent': 'comfyui-worker',
    [TIMESTAMP_HEADER]: String(body.timestamp),
  };
  if (secret) headers[SIGNATURE_HEADER] = sign(secret, text);
  // A total deadline (axios' timeout stops counting at the response head) and a small cap on
  // what a receiver may answer: a hostile receiver can neither hold a delivery slot nor fill memory.
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    const res = await client.post(url, text, {
      headers,
      timeout: timeoutMs,
      signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      maxContentLength: MAX_ANSWER_BYTES,
      responseType: 'text',
      transformResponse: (d: unknown) => d,
    });
    return res.status >= 200 && res.status < 300 ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (deadline.aborted || code === 'ECONNABORTED') return `timed out after ${timeoutMs} ms`;
    if (/maxContentLength/.test((err as Error).message)) return `answer larger than ${MAX_ANSWER_BYTES} bytes`;
    return code ?? (err as Error).message;
  }
}
