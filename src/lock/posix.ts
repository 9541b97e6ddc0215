/**
 * {@linkcode LockFile} on Linux and macOS: `flock(2)` on a dedicated file through libc FFI
 * (`ffi/posix/libc.ts`).
 *
 * Every attempt opens its own fd, and flock locks belong to the open file description, so two
 * acquisitions in one process exclude each other exactly like two processes do (no re-entrancy).
 * Waiting is a non-blocking poll with back-off and a deadline, never a blocking `flock`: a pending
 * blocking FFI call cannot be cancelled and keeps the process alive. The kernel releases the lock
 * when the holder dies, so there is no stale-lock cleanup (SPEC.md §1.4).
 *
 * @module
 */

import { openLockFd, tryFlock, unlockAndClose } from "../../ffi/posix/libc.ts";
import type { AcquireOptions, LockFile } from "./lock.ts";
import { type DisposableHeldLock, pollForLock } from "./poll.ts";

export type { DisposableHeldLock };

/**
 * A lock file at `path`, created 0600 on first use and never truncated, replaced or renamed
 * (other processes hold fds to it). The constructor touches nothing; the parent directory must
 * exist (creating it is the caller's job).
 *
 * Every method requires `--allow-ffi` (unscoped: `--allow-ffi=libc.so.6` breaks, see
 * denoland/deno#29246) and `--allow-read`/`--allow-write` for `path`.
 */
export class PosixLockFile implements LockFile {
  /** The lock file, for messages. */
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Exclusive lock (`LOCK_EX|LOCK_NB`) or `null` when anyone holds it, shared or exclusive.
   *
   * @throws {Deno.errors.NotFound} when the directory does not exist.
   * @throws {PosixError} on any other libc failure.
   */
  tryAcquire(): DisposableHeldLock | null {
    return this.#tryAcquire(true);
  }

  /**
   * Shared lock (`LOCK_SH|LOCK_NB`), for readers that must not overlap a writer but may overlap
   * each other; `null` while an exclusive lock is held.
   */
  tryAcquireShared(): DisposableHeldLock | null {
    return this.#tryAcquire(false);
  }

  /**
   * Exclusive lock, polling with exponential back-off (10 ms doubling to 200 ms, with jitter)
   * until `timeoutMs` has passed. `onWait` is called once, the first time the lock is busy.
   *
   * @throws {LockTimeoutError} when the deadline passes; names the lock file.
   */
  acquire(options: AcquireOptions): Promise<DisposableHeldLock> {
    return this.#acquire(true, options);
  }

  /** Shared counterpart of {@linkcode PosixLockFile.acquire}. */
  acquireShared(options: AcquireOptions): Promise<DisposableHeldLock> {
    return this.#acquire(false, options);
  }

  #tryAcquire(exclusive: boolean): DisposableHeldLock | null {
    const fd = openLockFd(this.path);
    let locked = false;
    try {
      locked = tryFlock(fd, exclusive);
    } finally {
      if (!locked) unlockAndClose(fd);
    }
    return locked ? new _PosixHeldLock(fd) : null;
  }

  async #acquire(exclusive: boolean, options: AcquireOptions): Promise<DisposableHeldLock> {
    const startedAt = performance.now();
    // One fd for the whole wait; it becomes the held lock's fd on success.
    const fd = openLockFd(this.path);
    let locked = false;
    try {
      await pollForLock(() => tryFlock(fd, exclusive), this.path, options, startedAt);
      locked = true;
      return new _PosixHeldLock(fd);
    } finally {
      if (!locked) unlockAndClose(fd);
    }
  }
}

/** A held flock; owns its fd. `release` is idempotent so a late second call never closes an fd
 * number that the process has since reused for something else. */
class _PosixHeldLock implements DisposableHeldLock {
  #fd: number | undefined;

  constructor(fd: number) {
    this.#fd = fd;
  }

  release(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    unlockAndClose(fd);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
