/**
 * The token state machine's pure core: given what the store holds and the time, what must
 * `token` do? (SPEC.md §1 and §1.2; kubelogin states its machine the same way.)
 *
 *     access token fresh enough for the caller's reuse window   -> cached: print it
 *     otherwise, a refresh token exists                         -> refresh
 *                (a still-valid access token is kept as the fallback when the server fails)
 *     otherwise                                                 -> login (or fail when not interactive)
 *
 * "Fresh enough": Claude Code reuses a helper's answer for `CLAUDE_CODE_API_KEY_HELPER_TTL_MS`
 * (default 5 minutes) and then serves it once more while re-running the helper. So a printed
 * token must outlive that TTL plus a margin. When the token's whole lifetime is shorter than
 * that (a 5-minute Cognito token with a 55-minute TTL), the best we can do is require the
 * floor of 5 minutes, capped at half the lifetime so a fresh token is still served.
 *
 * Clock skew cannot hurt: expiries are stored on the local clock (obtained + `expires_in`),
 * and a clock that went backwards past the time a token was obtained forces a refresh.
 *
 * @module
 */

import type { AccessRecord, RefreshRecord } from "./record.ts";

/** How much validity a printed token must have left. */
export interface FreshnessPolicy {
  /** Claude Code's reuse window: `CLAUDE_CODE_API_KEY_HELPER_TTL_MS`, default 5 min. */
  helperTtlMs: number;
  /** Added to the TTL: Claude serves a stale value once more, and requests take time. */
  marginMs: number;
  /** Minimum remaining validity when the lifetime cannot cover TTL + margin. */
  floorMs: number;
}

/** Claude Code's default `apiKeyHelper` TTL (research A.3). */
export const CLAUDE_DEFAULT_TTL_MS = 5 * 60_000;

/** The default policy; see {@linkcode policyFromEnv}. */
export const DEFAULT_POLICY: FreshnessPolicy = {
  helperTtlMs: CLAUDE_DEFAULT_TTL_MS,
  marginMs: 60_000,
  floorMs: 5 * 60_000,
};

/** A token this close to expiry is not printed even as a fallback. */
export const MIN_USABLE_MS = 30_000;

/**
 * Builds the policy from `CLAUDE_CODE_API_KEY_HELPER_TTL_MS`. An unparsable value is ignored
 * with a warning (Claude Code itself would fall back to its default).
 */
export function policyFromEnv(
  ttl: string | undefined,
): { policy: FreshnessPolicy; warning?: string } {
  if (ttl === undefined || ttl.trim() === "") return { policy: DEFAULT_POLICY };
  const n = Number(ttl.trim());
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) {
    return {
      policy: DEFAULT_POLICY,
      warning:
        `CLAUDE_CODE_API_KEY_HELPER_TTL_MS="${ttl}" is not a whole number of milliseconds; using ${CLAUDE_DEFAULT_TTL_MS}`,
    };
  }
  return { policy: { ...DEFAULT_POLICY, helperTtlMs: n } };
}

/** Remaining validity a token with this record needs to be printed from the cache. */
export function requiredRemainingMs(access: AccessRecord, policy: FreshnessPolicy): number {
  const wanted = policy.helperTtlMs + policy.marginMs;
  const lifetime = access.expiresAt - access.obtainedAt;
  if (lifetime >= wanted) return wanted;
  return Math.min(policy.floorMs, Math.max(0, lifetime) / 2);
}

/** What the store holds, already decoded. */
export interface Stored {
  access: AccessRecord | null;
  refresh: RefreshRecord | null;
}

/** What `token` must do next. */
export type Decision =
  | { kind: "cached"; access: AccessRecord }
  | { kind: "refresh"; refresh: RefreshRecord; fallback: AccessRecord | null }
  | { kind: "login"; fallback: AccessRecord | null };

/** Whether the token can still be used at all (for the print-with-a-warning fallback). */
export function isUsable(access: AccessRecord, now: number): boolean {
  return !clockWentBack(access, now) && access.expiresAt - now >= MIN_USABLE_MS;
}

/** The decision for `stored` at `now`. Pure: no I/O, no clock of its own. */
export function classify(stored: Stored, now: number, policy: FreshnessPolicy): Decision {
  const { access, refresh } = stored;
  if (access && isFresh(access, now, policy)) return { kind: "cached", access };
  const fallback = access && isUsable(access, now) ? access : null;
  if (refresh) return { kind: "refresh", refresh, fallback };
  return { kind: "login", fallback };
}

/** Fresh: valid for at least {@linkcode requiredRemainingMs} more. */
export function isFresh(access: AccessRecord, now: number, policy: FreshnessPolicy): boolean {
  if (clockWentBack(access, now)) return false;
  return access.expiresAt - now >= requiredRemainingMs(access, policy);
}

/** Allow a minute of jitter before calling the clock broken. */
function clockWentBack(access: AccessRecord, now: number): boolean {
  return now < access.obtainedAt - 60_000;
}
