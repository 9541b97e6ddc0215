/**
 * The wait loop every {@linkcode LockFile} shares: a non-blocking attempt polled with exponential
 * back-off until a deadline. Both OS implementations (flock on POSIX, `LockFileEx` with
 * `LOCKFILE_FAIL_IMMEDIATELY` on Windows) only have a non-blocking primitive on purpose: a blocking
 * FFI call cannot be cancelled and, made `nonblocking`, keeps the process alive until it returns
 * (research notes `deno-ffi.md` §0.6).
 *
 * @module
 */

import { LockTimeoutError } from "../errors.ts";
import type { AcquireOptions, HeldLock } from "./lock.ts";

/** A held lock that also works with `using` (releases on scope exit). */
export type DisposableHeldLock = HeldLock & Disposable;

/** First poll interval while the lock is busy. */
export const FIRST_DELAY_MS = 10;
/** Longest poll interval: bounds how late we notice a release. */
export const MAX_DELAY_MS = 200;
/** Up to this fraction is added at random so parallel waiters do not poll in lock-step. */
export const JITTER = 0.2;

/**
 * Calls `attempt` until it returns `true`, sleeping 10 ms doubling to 200 ms (with jitter) in
 * between, until `timeoutMs` after `startedAt` (a `performance.now()` value, taken by the caller
 * before it opened the lock file so the open counts against the wait). `onWait` is called once,
 * the first time `attempt` says busy. There is always one attempt at the deadline.
 *
 * Needs no permission itself; `attempt` needs whatever the OS primitive needs.
 *
 * @throws {LockTimeoutError} when the deadline passes; the one-line message names `path`.
 * @throws whatever `attempt` throws (a real failure, not "busy").
 */
export async function pollForLock(
  attempt: () => boolean,
  path: string,
  { timeoutMs, onWait }: AcquireOptions,
  startedAt: number = performance.now(),
): Promise<void> {
  const deadline = startedAt + timeoutMs;
  let delay = FIRST_DELAY_MS;
  let waited = false;
  for (;;) {
    if (attempt()) return;
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      throw new LockTimeoutError(
        `Timed out after ${timeoutMs} ms waiting for the lock file ${path}: ` +
          "another agent-runner-auth process holds it",
      );
    }
    if (!waited) {
      waited = true;
      onWait?.();
    }
    // The last sleep ends at the deadline, so there is always one try at the deadline.
    await _sleep(Math.min(delay * (1 + Math.random() * JITTER), remaining));
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

function _sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
