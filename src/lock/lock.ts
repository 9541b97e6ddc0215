/**
 * The cross-process lock interface (SPEC.md §1.4). Only a refresh or a login holds it
 * exclusively; cached readers do not take it at all.
 *
 * @module
 */

/** A held lock. `release` is idempotent; process death releases it too (flock semantics). */
export interface HeldLock {
  release(): void;
}

/** Options for {@linkcode LockFile.acquire}. */
export interface AcquireOptions {
  /** Give up after this long and throw `LockTimeoutError`. */
  timeoutMs: number;
  /** Called once, the first time the lock is found busy, so the caller can say what it waits for. */
  onWait?: () => void;
}

/** A lock on a dedicated file that is never replaced or renamed. */
export interface LockFile {
  /** Non-blocking attempt; `null` when another process holds it. */
  tryAcquire(): HeldLock | null;
  /** Poll with back-off until acquired or `timeoutMs` passes. */
  acquire(options: AcquireOptions): Promise<HeldLock>;
}
