/**
 * {@linkcode LockFile} on Windows: `LockFileEx` on a dedicated file through kernel32 FFI
 * (`ffi/windows/kernel32.ts`), the counterpart of the flock implementation in `posix.ts`.
 *
 * Every attempt opens its own handle, and Windows byte-range locks belong to the handle, so two
 * acquisitions in one process exclude each other like two processes do (no re-entrancy). Waiting
 * is the same non-blocking poll with back-off and a deadline as on POSIX (`poll.ts`). Windows
 * releases the lock when the holder's handle closes or the process dies, so there is no stale-lock
 * cleanup (SPEC.md §1.4). Byte-range locks are mandatory on Windows, which is one more reason the
 * lock is a dedicated file that nothing reads (deno-ffi.md §3.5).
 *
 * Written from the Win32 documentation; the real kernel32 is exercised under Wine 10 (`deno task
 * test:windows`) and on the windows-latest runners by the tests gated on
 * `Deno.build.os === "windows"` in `windows_test.ts`, a fake one anywhere.
 *
 * @module
 */

import {
  type Kernel32,
  loadKernel32,
  openLockHandle,
  tryLockHandle,
  unlockAndCloseHandle,
} from "../../ffi/windows/kernel32.ts";
import type { AcquireOptions, LockFile } from "./lock.ts";
import { type DisposableHeldLock, pollForLock } from "./poll.ts";

/**
 * A lock file at `path`, created on first use and never truncated, replaced or renamed (other
 * processes hold handles to it). The constructor touches nothing; the parent directory must exist.
 *
 * Every method requires `--allow-ffi` (unscoped: a scoped `--allow-ffi=kernel32.dll` resolves the
 * name against the current directory, denoland/deno#29246). The file is opened by `CreateFileW`,
 * which Deno's read/write permissions do not cover; `openLockFile` documents them for parity.
 */
export class WindowsLockFile implements LockFile {
  /** The lock file, for messages. */
  readonly path: string;
  readonly #kernel32: () => Kernel32;

  /**
   * @param kernel32 the symbol table to call; tests pass a fake. Default: the real kernel32,
   * opened on the first acquire.
   */
  constructor(path: string, kernel32?: Kernel32) {
    this.path = path;
    this.#kernel32 = kernel32 ? () => kernel32 : loadKernel32;
  }

  /**
   * Exclusive lock (`LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY`) or `null` when anyone
   * holds it, shared or exclusive.
   *
   * @throws {Win32Error} when the file cannot be opened (e.g. ERROR_PATH_NOT_FOUND) or locking
   * fails for another reason than contention.
   */
  tryAcquire(): DisposableHeldLock | null {
    return this.#tryAcquire(true);
  }

  /** Shared lock, for readers that must not overlap a writer; `null` while one is held. */
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

  /** Shared counterpart of {@linkcode WindowsLockFile.acquire}. */
  acquireShared(options: AcquireOptions): Promise<DisposableHeldLock> {
    return this.#acquire(false, options);
  }

  #tryAcquire(exclusive: boolean): DisposableHeldLock | null {
    const k32 = this.#kernel32();
    const handle = openLockHandle(k32, this.path);
    let locked = false;
    try {
      locked = tryLockHandle(k32, handle, exclusive);
    } finally {
      if (!locked) unlockAndCloseHandle(k32, handle, false);
    }
    return locked ? new _WindowsHeldLock(k32, handle) : null;
  }

  async #acquire(exclusive: boolean, options: AcquireOptions): Promise<DisposableHeldLock> {
    const startedAt = performance.now();
    const k32 = this.#kernel32();
    // One handle for the whole wait; it becomes the held lock's handle on success.
    const handle = openLockHandle(k32, this.path);
    let locked = false;
    try {
      await pollForLock(() => tryLockHandle(k32, handle, exclusive), this.path, options, startedAt);
      locked = true;
      return new _WindowsHeldLock(k32, handle);
    } finally {
      if (!locked) unlockAndCloseHandle(k32, handle, false);
    }
  }
}

/** A held lock; owns its handle. `release` is idempotent so a handle is never closed twice
 * (Windows reuses handle values, so a second close could hit someone else's handle). */
class _WindowsHeldLock implements DisposableHeldLock {
  readonly #kernel32: Kernel32;
  #handle: Deno.PointerObject | undefined;

  constructor(kernel32: Kernel32, handle: Deno.PointerObject) {
    this.#kernel32 = kernel32;
    this.#handle = handle;
  }

  release(): void {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    unlockAndCloseHandle(this.#kernel32, handle);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
