// A job's webhook as a request asked for it (the secret is kept apart, sealed).
export interface WebhookTarget {
  url: string;
  extraParams: Record<string, unknown>;
  /** false when the request explicitly asked for an unsigned webhook (secret: ""). */
  signed: boolean;
  /** Per-request timeout; WEBHOOK_TIMEOUT_S when absent. */
  timeoutS?: number;
}
