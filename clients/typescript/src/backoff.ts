// Reconnection delays: exponential backoff with full jitter (a uniform wait between 0 and the
// capped exponential), so many clients cut off at once do not come back at once.

export interface BackoffOptions {
  /** The cap of the first wait, ms. */
  initialMs: number;
  /** The longest wait, ms. */
  maxMs: number;
}

/** 250 ms for the first retry's cap, doubling, never more than 10 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 10_000 };

/** The wait before retry number `attempt` (0 for the first): uniform in
 * [0, min(maxMs, initialMs · 2^attempt)). `random` is in [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(random() * cap);
}
