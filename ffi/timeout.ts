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
 * Races `pending` against a {@linkcode patientTimer} of `timeoutMs`; when the timer wins,
 * `onTimeout` runs (kill the child, close the socket, …) and its `StoreError` is thrown. A late
 * rejection of `pending` is absorbed, so nothing is left unhandled.
 */
export function boundStoreCall<T>(
  pending: Promise<T>,
  timeoutMs: number,
  onTimeout: () => StoreError,
): Promise<T> {
  let cancel = () => {};
  const expired = new Promise<never>((_, reject) => {
    cancel = patientTimer(timeoutMs, () => reject(onTimeout()));
  });
  expired.catch(() => {});
  pending.catch(() => {});
  return Promise.race([pending, expired]).finally(() => cancel());
}

/** How often a {@linkcode patientTimer} checks that this process is still being run. */
export const PATIENCE_STEP_MS = 250;

/** Test seams of {@linkcode patientTimer}. */
export interface PatienceOptions {
  step?: number;
  now?: () => number;
  /** Calls `fn` after about `ms`; the default is `AbortSignal.timeout` (see below). */
  schedule?: (ms: number, fn: () => void) => void;
}

/**
 * Calls `onExpire` once `timeoutMs` have passed *while this process was being run*; returns a
 * cancel function. It ticks every {@linkcode PATIENCE_STEP_MS} and credits a tick with at most
 * two steps, however late it came: on a machine too busy to run us (CPU starvation, a laptop
 * waking up), a plain wall-clock timer fires late and, run before the I/O it was bounding, ends
 * a call whose answer is already waiting on the socket. That is how a refresh grant the server
 * had carried out was thrown away under load, and with refresh-token rotation on, its retry
 * then ended the session (issue 11 #8). A silent peer still times out after `timeoutMs` of our
 * running time; a machine stopped for a minute costs at most two steps of the budget.
 *
 * The timer is `AbortSignal.timeout`, not `setTimeout`: in Deno 2.9 the first `setTimeout` of a
 * process costs ~3.5 ms (measured: 3.2–5.3 ms, against 0.3 ms for `AbortSignal.timeout`), a
 * tenth of a cached `token` call. It cannot be cleared, so a cancelled timer leaves one step
 * pending at most; with a listener attached that keeps the event loop alive until it fires,
 * which costs the CLI nothing (it ends with `Deno.exit`, `src/main.ts`). Needs no permission.
 */
export function patientTimer(
  timeoutMs: number,
  onExpire: () => void,
  options: PatienceOptions = {},
): () => void {
  const step = options.step ?? PATIENCE_STEP_MS;
  const now = options.now ?? (() => performance.now());
  const schedule = options.schedule ??
    ((ms, fn) => AbortSignal.timeout(ms).addEventListener("abort", fn, { once: true }));
  let done = false;
  let credited = 0;
  let last = now();
  const arm = () =>
    schedule(Math.max(1, Math.min(step, timeoutMs - credited)), () => {
      if (done) return;
      const at = now();
      credited += Math.min(at - last, 2 * step);
      last = at;
      if (credited < timeoutMs) return arm();
      done = true;
      onExpire();
    });
  arm();
  return () => done = true;
}

/**
 * An `AbortSignal` that aborts with a `TimeoutError` `DOMException` (as `AbortSignal.timeout`)
 * after `timeoutMs` of this process's running time ({@linkcode patientTimer}), for HTTP
 * requests; `cancel` once the answer is in, so no tick keeps the event loop alive.
 */
export function patientDeadline(timeoutMs: number): { signal: AbortSignal; cancel: () => void } {
  const controller = new AbortController();
  const cancel = patientTimer(timeoutMs, () => {
    controller.abort(new DOMException(`No answer within ${timeoutMs} ms`, "TimeoutError"));
  });
  return { signal: controller.signal, cancel };
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
