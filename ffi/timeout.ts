/**
 * The one bound on every store call (SPEC.md §4: "each call is bounded by a timeout"), shared by
 * the native wrappers (`ffi/linux/libsecret.ts`, `ffi/darwin/security.ts`) and the backends that
 * are not FFI: `pass` (a child process that can wait on pinentry or a hung gpg-agent), the
 * D-Bus reader and the encrypted file (a config directory on a hung network mount). It lives on
 * the floor, in `ffi/`, because `ffi/` imports nothing from `src/` (issue 13 point 11).
 *
 * No imports beyond `./errors.ts`: this is on the cached `token` path of those stores.
 *
 * @module
 */

import { StoreError } from "./errors.ts";

/** Default bound on one store call, as gh's keyring wrapper (cli/cli internal/keyring). */
export const DEFAULT_STORE_TIMEOUT_MS = 3000;
/** The longest delay a JS timer can hold (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * `AGENT_RUNNER_STORE_TIMEOUT_MS` (a positive integer, read at call time so tests and `doctor`
 * can change it) or {@linkcode DEFAULT_STORE_TIMEOUT_MS}. A malformed value falls back to the
 * default rather than failing, exactly like the Secret Service wrapper.
 *
 * Needs `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS` (without it the default is used).
 */
export function storeTimeoutMs(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
): number {
  let raw: string | undefined;
  try {
    raw = getEnv("AGENT_RUNNER_STORE_TIMEOUT_MS");
  } catch {
    return DEFAULT_STORE_TIMEOUT_MS;
  }
  const ms = raw === undefined ? NaN : Number(raw);
  // Above 2^31 − 1 ms, timers fire at once (and Deno warns on stderr): treat it as malformed.
  return Number.isInteger(ms) && ms > 0 && ms <= MAX_TIMER_MS ? ms : DEFAULT_STORE_TIMEOUT_MS;
}

/**
 * Races `pending` against a timer of `timeoutMs`; when the timer wins, `onTimeout` runs (kill
 * the child, close the socket, …) and its `StoreError` is thrown. A late rejection of `pending`
 * is absorbed, so nothing is left unhandled.
 *
 * The timer is `AbortSignal.timeout`, not `setTimeout`: in Deno 2.9 the first `setTimeout` of a
 * process costs ~3.5 ms (measured: 3.2–5.3 ms, against 0.3 ms for `AbortSignal.timeout`), a
 * tenth of a cached `token` call. Its timer cannot be cleared, so a call that settles first
 * makes the later expiry a no-op; with a listener attached it keeps the event loop alive until
 * it fires, which costs the CLI nothing (it ends with `Deno.exit`, `src/main.ts`).
 */
export function boundStoreCall<T>(
  pending: Promise<T>,
  timeoutMs: number,
  onTimeout: () => StoreError,
): Promise<T> {
  let settled = false;
  const expired = new Promise<never>((_, reject) => {
    AbortSignal.timeout(timeoutMs).addEventListener("abort", () => {
      if (!settled) reject(onTimeout());
    }, { once: true });
  });
  expired.catch(() => {});
  pending.catch(() => {});
  return Promise.race([pending, expired]).finally(() => settled = true);
}

/**
 * The error of a Secret Service call that did not answer in time: libsecret's and the D-Bus
 * reader's, one text for both.
 */
export function secretServiceTimeout(timeoutMs: number, what: string): StoreError {
  return new StoreError(
    "timeout",
    `Secret Service did not answer within ${timeoutMs} ms (${what}): a keyring unlock ` +
      `prompt may be waiting, or the service is hung; AGENT_RUNNER_STORE_TIMEOUT_MS sets ` +
      `the limit`,
  );
}
