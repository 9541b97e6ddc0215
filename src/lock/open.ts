/**
 * Picks the {@linkcode LockFile} implementation for this OS (STYLE.md §3: branch once, import
 * lazily). Linux and macOS use `flock(2)` through libc (`posix.ts`); Windows uses `CreateFileW` +
 * `LockFileEx` through kernel32 (`windows.ts`), behind the same interface.
 *
 * @module
 */

import type { LockFile } from "./lock.ts";

/**
 * The lock file at `path` for this OS. Async because the OS module is imported on demand, so
 * another OS's FFI code is never even loaded. Nothing is opened or created until the first
 * acquire; the parent directory must already exist.
 *
 * Acquiring requires `--allow-ffi` (unscoped: a scoped `--allow-ffi=libc.so.6` or
 * `=kernel32.dll` breaks the library lookup, denoland/deno#29246) and
 * `--allow-read`/`--allow-write` for `path`.
 */
export async function openLockFile(path: string): Promise<LockFile> {
  if (Deno.build.os === "windows") {
    const { WindowsLockFile } = await import("./windows.ts");
    return new WindowsLockFile(path);
  }
  const { PosixLockFile } = await import("./posix.ts");
  return new PosixLockFile(path);
}
