/**
 * Picks the {@linkcode LockFile} implementation for this OS (STYLE.md §3: branch once, import
 * lazily). Linux and macOS use `flock(2)` through libc; Windows will use `CreateFileW` +
 * `LockFileEx` behind the same interface.
 *
 * @module
 */

import type { LockFile } from "./lock.ts";

/**
 * The lock file at `path` for this OS. Async because the OS module is imported on demand, so
 * another OS's FFI code is never even loaded. Nothing is opened or created until the first
 * acquire; the parent directory must already exist.
 *
 * Acquiring requires `--allow-ffi` (unscoped: a scoped `--allow-ffi=libc.so.6` breaks the soname
 * lookup, denoland/deno#29246) and `--allow-read`/`--allow-write` for `path`.
 *
 * @throws {Error} on Windows, for now.
 */
export async function openLockFile(path: string): Promise<LockFile> {
  if (Deno.build.os === "windows") {
    throw new Error(`File locking is not yet supported on Windows: cannot lock ${path}`);
  }
  const { PosixLockFile } = await import("./posix.ts");
  return new PosixLockFile(path);
}
