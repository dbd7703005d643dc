// One webhook POST: JSON body, signature and timestamp headers, a timeout. Resolves with an error
// text (status code or network error, never the URL's credentials) or undefined on a 2xx.
import type { AxiosInstance } from 'axios';
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
  try {
    const res = await client.post(url, text, {
      headers,
      timeout: timeoutMs,
      signal,
      responseType: 'text',
      transformResponse: (d: unknown) => d,
    });
    return res.status >= 200 && res.status < 300 ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === 'ECONNABORTED' ? `timed out after ${timeoutMs} ms` : (code ?? (err as Error).message);
  }
}
