// One webhook POST: JSON body, signature and timestamp headers, a timeout. Resolves with an error
// text (status code or network error, never the URL's credentials) or undefined on a 2xx.
import type { Readable } from 'node:stream';
import type { AxiosInstance } from 'axios';
import { deadline } from '../net/deadline';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from './sign';
import type { WebhookBody } from './payload';

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
  // A total deadline (axios' own timeout stops counting at the response head), and the answer's
  // body is not read at all: a receiver can neither hold a delivery slot nor fill memory.
  const limit = deadline(timeoutMs, signal);
  try {
    const res = await client.post<Readable>(url, text, {
      headers,
      timeout: timeoutMs,
      signal: limit.signal,
      responseType: 'stream',
    });
    res.data.destroy();
    return res.status >= 200 && res.status < 300 ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (limit.expired || code === 'ECONNABORTED') return `timed out after ${timeoutMs} ms`;
    return code ?? (err as Error).message;
  } finally {
    limit.done();
  }
}
