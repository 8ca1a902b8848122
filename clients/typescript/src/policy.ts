// Reconnect policy: which close codes are retried, and after how long (guide section 6).

/** Close codes after which the client stops instead of reconnecting. */
export const NO_RETRY_CODES: ReadonlySet<number> = new Set([
  1000, // normal close by the server: the session was ended on purpose
  1007, // a text frame that was not UTF-8: a client bug, retrying would repeat it
  1008, // bad group/client ID in the path, or a malformed ?recover=: fix the URL
  1009, // a frame over the size limit: the application sent something too big
  4501, // token missing, invalid or expired: get a new one, then connect() again
]);

/** Tunables of the backoff; all in milliseconds. */
export interface ReconnectOptions {
  /** Cap of the first retry after most codes; doubles per failed attempt. Default 1000. */
  baseMs?: number;
  /** Cap of the first retry after 1012 (node restarting: another node can take us). Default 250. */
  restartBaseMs?: number;
  /** Largest cap. Default 30000. */
  maxMs?: number;
  /** Fixed pause added after 4529 (rate limited, too many connections). Default 10000. */
  rateLimitPauseMs?: number;
  /** Override the decision per close code: return true to retry, false to stop. */
  retry?: (code: number, reason: string) => boolean;
}

export function shouldRetry(code: number, reason: string, options: ReconnectOptions = {}): boolean {
  if (options.retry) return options.retry(code, reason);
  return !NO_RETRY_CODES.has(code);
}

/**
 * Full jitter: a uniformly random delay up to a cap that doubles per failed attempt
 * (`attempt` counts from 0), plus a fixed pause after 4529.
 */
export function backoffDelay(
  code: number,
  attempt: number,
  options: ReconnectOptions = {},
  random: () => number = Math.random,
): number {
  const base = code === 1012 ? options.restartBaseMs ?? 250 : options.baseMs ?? 1_000;
  const cap = Math.min(options.maxMs ?? 30_000, base * 2 ** Math.min(attempt, 30));
  const pause = code === 4529 ? options.rateLimitPauseMs ?? 10_000 : 0;
  return Math.round(pause + random() * cap);
}
