// A deadline for one outbound call, linked to an outer signal (the job's, the sender's) without
// AbortSignal.any, which on Node 20 keeps a reference per call on the long-lived outer signal.

export interface Deadline {
  signal: AbortSignal;
  /** True when the deadline (not the outer signal) ended the call. */
  readonly expired: boolean;
  done(): void;
}

export function deadline(ms: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new Error(`timed out after ${ms} ms`));
  }, ms);
  const onOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    get expired() {
      return expired;
    },
    done() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}
