// Webhook signatures. The body is signed as it is sent (HMAC-SHA256, hex), in the api-wrapper's
// header `X-Webhook-Signature: sha256=<hex>`, so existing receivers keep verifying. The body
// carries a `timestamp` (also sent as X-Webhook-Timestamp) covered by the signature, so a
// receiver can refuse old or replayed deliveries.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Webhook-Signature';
export const TIMESTAMP_HEADER = 'X-Webhook-Timestamp';

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** What a receiver does (used in tests and documented in the README). */
export function verify(secret: string, body: string, header: string | undefined): boolean {
  if (header === undefined) return false;
  const expected = Buffer.from(sign(secret, body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
