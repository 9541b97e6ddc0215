/**
 * `kernel32.dll` through Deno FFI for the Windows side of the cross-process lock (SPEC.md §1.4):
 * `CreateFileW` + `LockFileEx`/`UnlockFileEx` + `CloseHandle`, plus `GetLastError` and the
 * UTF-16LE string helpers the other Windows module (`advapi32.ts`) shares. Raw symbol table first,
 * then a small safe wrapper that turns `FALSE`/`INVALID_HANDLE_VALUE` into {@linkcode Win32Error}
 * keeping the number.
 *
 * Written from the Win32 documentation cited on each symbol; run for real by the Windows build of
 * Deno under Wine 10 (`deno task test:windows`: `deno.exe` processes contending, a holder killed)
 * and by the gated tests in `src/lock/windows_test.ts` on the windows-latest runners; unit-tested
 * anywhere against a fake symbol table (`test/fixtures/fake_kernel32.ts`).
 *
 * Why it looks the way it does:
 * - Every call is synchronous: `GetLastError` is per thread, so it is only meaningful when read
 *   right after the failing call on the same thread; a `nonblocking` call runs on Deno's blocking
 *   pool and its error code is lost. Deno has no "preserve last error" facility, and other FFIs
 *   (node-ffi#261, koffi#112) saw it clobbered; callers treat a 0 as "unknown", never as success
 *   (research notes `deno-ffi.md` §0.10).
 * - The lock is `LockFileEx(LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY)` over the whole
 *   64-bit range from offset 0, which is what Rust std's `File::try_lock` (and so
 *   `Deno.FsFile.tryLock`) does on Windows (deno-ffi.md §4.1). Windows byte-range locks are
 *   mandatory, so the lock file is a dedicated file nobody reads (deno-ffi.md §3.5).
 * - The library is opened lazily on the first call: importing this module opens nothing, so it
 *   type-checks and imports on Linux and macOS.
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// Raw symbol table
// ---------------------------------------------------------------------------------------------

/** kernel32 symbols, each with its C declaration (fileapi.h, errhandlingapi.h, handleapi.h). */
export const kernel32Symbols = {
  // HANDLE CreateFileW(LPCWSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
  //     LPSECURITY_ATTRIBUTES lpSecurityAttributes, DWORD dwCreationDisposition,
  //     DWORD dwFlagsAndAttributes, HANDLE hTemplateFile);
  CreateFileW: {
    parameters: [
      "buffer", // LPCWSTR lpFileName: NUL-terminated UTF-16LE
      "u32", // DWORD dwDesiredAccess
      "u32", // DWORD dwShareMode
      "pointer", // LPSECURITY_ATTRIBUTES: NULL, so the handle is not inherited by children
      "u32", // DWORD dwCreationDisposition
      "u32", // DWORD dwFlagsAndAttributes
      "pointer", // HANDLE hTemplateFile: NULL
    ],
    result: "pointer", // HANDLE: INVALID_HANDLE_VALUE ((HANDLE)-1) on failure, never NULL
  },
  // BOOL LockFileEx(HANDLE hFile, DWORD dwFlags, DWORD dwReserved,
  //     DWORD nNumberOfBytesToLockLow, DWORD nNumberOfBytesToLockHigh, LPOVERLAPPED lpOverlapped);
  LockFileEx: {
    parameters: [
      "pointer", // HANDLE hFile
      "u32", // DWORD dwFlags: LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY
      "u32", // DWORD dwReserved: must be 0
      "u32", // DWORD nNumberOfBytesToLockLow
      "u32", // DWORD nNumberOfBytesToLockHigh
      "buffer", // LPOVERLAPPED lpOverlapped: required; Offset/OffsetHigh = start of the range
    ],
    result: "i32", // BOOL
  },
  // BOOL UnlockFileEx(HANDLE hFile, DWORD dwReserved, DWORD nNumberOfBytesToUnlockLow,
  //     DWORD nNumberOfBytesToUnlockHigh, LPOVERLAPPED lpOverlapped);
  UnlockFileEx: {
    parameters: [
      "pointer", // HANDLE hFile
      "u32", // DWORD dwReserved: must be 0
      "u32", // DWORD nNumberOfBytesToUnlockLow
      "u32", // DWORD nNumberOfBytesToUnlockHigh
      "buffer", // LPOVERLAPPED lpOverlapped: the same start offset as the lock
    ],
    result: "i32", // BOOL
  },
  // BOOL CloseHandle(HANDLE hObject);
  CloseHandle: {
    parameters: ["pointer"], // HANDLE hObject
    result: "i32", // BOOL
  },
  // DWORD GetLastError(void);   the calling thread's last-error code
  GetLastError: { parameters: [], result: "u32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** What the wrapper calls: the loaded symbols, or a fake with the same signatures in tests. */
export type Kernel32 = Deno.StaticForeignLibraryInterface<typeof kernel32Symbols>;

// ---------------------------------------------------------------------------------------------
// Constants (winnt.h, fileapi.h, minwinbase.h, winerror.h)
// ---------------------------------------------------------------------------------------------

/** winnt.h: `GENERIC_READ` access right. */
export const GENERIC_READ = 0x80000000;
/** winnt.h: `GENERIC_WRITE` access right. */
export const GENERIC_WRITE = 0x40000000;
/** winnt.h: let other handles read the file while ours is open. */
export const FILE_SHARE_READ = 0x1;
/** winnt.h: let other handles write the file while ours is open. */
export const FILE_SHARE_WRITE = 0x2;
/** fileapi.h: open the file, creating it when missing (then GetLastError is 183 on success). */
export const OPEN_ALWAYS = 4;
/** winnt.h: a plain file. */
export const FILE_ATTRIBUTE_NORMAL = 0x80;
/** minwinbase.h: return at once instead of waiting for a conflicting lock. */
export const LOCKFILE_FAIL_IMMEDIATELY = 0x1;
/** minwinbase.h: exclusive (write) lock; without it the lock is shared. */
export const LOCKFILE_EXCLUSIVE_LOCK = 0x2;
/** `INVALID_HANDLE_VALUE`, `(HANDLE)(LONG_PTR)-1`, as the 64-bit pointer value Deno shows. */
export const INVALID_HANDLE_VALUE = 0xFFFF_FFFF_FFFF_FFFFn;
/** sizeof(OVERLAPPED) on x64 and arm64 (minwinbase.h): Internal@0, InternalHigh@8,
 * Offset@16, OffsetHigh@20 (a union with Pointer), hEvent@24. */
export const OVERLAPPED_SIZE = 32;

/** winerror.h codes this layer names in messages or acts upon. */
export const ERROR_FILE_NOT_FOUND = 2;
/** winerror.h: a directory on the path does not exist. */
export const ERROR_PATH_NOT_FOUND = 3;
/** winerror.h */
export const ERROR_ACCESS_DENIED = 5;
/** winerror.h: another handle opened the file without sharing. */
export const ERROR_SHARING_VIOLATION = 32;
/** winerror.h: the range is locked by another handle (`LOCKFILE_FAIL_IMMEDIATELY`). */
export const ERROR_LOCK_VIOLATION = 33;
/** winerror.h: UnlockFileEx of a range that is not locked. */
export const ERROR_NOT_LOCKED = 158;
/** winerror.h: CreateFileW(OPEN_ALWAYS) found an existing file (set on SUCCESS). */
export const ERROR_ALREADY_EXISTS = 183;
/** winerror.h: overlapped I/O in progress; Rust std treats it like 33 for `try_lock`. */
export const ERROR_IO_PENDING = 997;

/** Names for the Win32 codes likely here, for one-line messages. */
const ERROR_NAMES: Readonly<Record<number, string>> = {
  0: "no error code (GetLastError returned 0)",
  [ERROR_FILE_NOT_FOUND]: "ERROR_FILE_NOT_FOUND",
  [ERROR_PATH_NOT_FOUND]: "ERROR_PATH_NOT_FOUND",
  [ERROR_ACCESS_DENIED]: "ERROR_ACCESS_DENIED",
  [ERROR_SHARING_VIOLATION]: "ERROR_SHARING_VIOLATION",
  [ERROR_LOCK_VIOLATION]: "ERROR_LOCK_VIOLATION",
  6: "ERROR_INVALID_HANDLE",
  87: "ERROR_INVALID_PARAMETER",
  [ERROR_NOT_LOCKED]: "ERROR_NOT_LOCKED",
  206: "ERROR_FILENAME_EXCED_RANGE",
  [ERROR_IO_PENDING]: "ERROR_IO_PENDING",
};

/** The symbolic name of a Win32 error code, or `Win32 error N`. */
export function win32ErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `Win32 error ${code}`;
}

// ---------------------------------------------------------------------------------------------
// UTF-16LE strings (shared with advapi32.ts)
// ---------------------------------------------------------------------------------------------

/**
 * `text` as a NUL-terminated UTF-16LE `LPCWSTR`, byte order explicit so the encoding does not
 * depend on the host. JS strings already are UTF-16 code units, so this copies them one for one
 * (a lone surrogate is passed through, as Windows file names allow). The caller keeps the buffer
 * referenced until the native call returns.
 *
 * @throws {TypeError} when `text` contains NUL: Windows would stop reading there.
 */
export function toWide(text: string): Uint8Array {
  if (text.includes("\0")) throw new TypeError("A Windows string argument cannot contain NUL");
  const bytes = new Uint8Array((text.length + 1) * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < text.length; i++) view.setUint16(i * 2, text.charCodeAt(i), true);
  return bytes; // the last two bytes stay 0: the terminator
}

/** Decodes UTF-16LE code units (no terminator) back into a JS string, surrogates as they are. */
export function fromWide(bytes: Uint8Array): string {
  if (bytes.length % 2 !== 0) throw new RangeError("UTF-16LE data has an odd number of bytes");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 2) text += String.fromCharCode(view.getUint16(i, true));
  return text;
}

/**
 * Reads a NUL-terminated UTF-16LE string that native code owns (an `LPWSTR` field). `null` for a
 * NULL pointer. Reads at most `maxChars` units: a missing terminator is an error, not a crash
 * further on.
 *
 * Requires `--allow-ffi`.
 */
export function readWide(pointer: Deno.PointerValue, maxChars = 32_767): string | null {
  if (pointer === null) return null;
  const view = new Deno.UnsafePointerView(pointer);
  let text = "";
  for (let i = 0; i <= maxChars; i++) {
    const unit = view.getUint16(i * 2); // host order; Windows on x64/arm64 is little-endian
    if (unit === 0) return text;
    text += String.fromCharCode(unit);
  }
  throw new RangeError(`A native UTF-16 string is longer than ${maxChars} characters`);
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

let _loaded: Kernel32 | undefined;

/**
 * The real kernel32, opened on first use. Loading a system DLL by bare name needs an unscoped
 * `--allow-ffi` (a scoped one resolves the name against the current directory,
 * denoland/deno#29246).
 *
 * @throws {Error} off Windows, or when the DLL cannot be loaded.
 */
export function loadKernel32(): Kernel32 {
  if (_loaded) return _loaded;
  if (Deno.build.os !== "windows") {
    throw new Error(`kernel32.dll exists only on Windows, not on ${Deno.build.os}`);
  }
  _loaded = Deno.dlopen("kernel32.dll", kernel32Symbols).symbols;
  return _loaded;
}

// ---------------------------------------------------------------------------------------------
// Safe wrapper
// ---------------------------------------------------------------------------------------------

/** A kernel32 call failed; keeps the Win32 error code and its name. */
export class Win32Error extends Error {
  /** The `GetLastError` value read right after the call (0 when Windows reported none). */
  readonly code: number;
  /** The function that failed, e.g. `CreateFileW`. */
  readonly call: string;
  constructor(call: string, code: number, detail?: string) {
    super(`${call} failed${detail ? ` for ${detail}` : ""}: ${win32ErrorName(code)} (${code})`);
    this.code = code;
    this.call = call;
    this.name = "Win32Error";
  }
}

/** A zeroed OVERLAPPED: offset 0 (the lock starts at the first byte), no event. */
function _overlapped(): Uint8Array {
  return new Uint8Array(OVERLAPPED_SIZE);
}

/** Whether a HANDLE is `INVALID_HANDLE_VALUE` (or NULL, which CreateFileW never returns). */
export function isInvalidHandle(handle: Deno.PointerValue): boolean {
  return handle === null || Deno.UnsafePointer.value(handle) === INVALID_HANDLE_VALUE;
}

/**
 * Opens (creating when missing) the lock file for locking: read/write access, other handles may
 * read and write it too (every process opens the same file), no inheritance (NULL security
 * attributes, the Windows counterpart of `O_CLOEXEC`: a child we spawn must not keep the lock).
 * The file is never truncated. The parent directory must exist.
 *
 * Requires `--allow-ffi` (unscoped). The path is passed to Windows as is (no `\\?\` prefix, so
 * it is limited to MAX_PATH unless long paths are enabled).
 *
 * @throws {Win32Error} e.g. ERROR_PATH_NOT_FOUND when the directory is missing.
 */
export function openLockHandle(k32: Kernel32, path: string): Deno.PointerObject {
  const name = toWide(path);
  const handle = k32.CreateFileW(
    name,
    (GENERIC_READ | GENERIC_WRITE) >>> 0, // `|` yields a negative int32 in JS; a DWORD is unsigned
    FILE_SHARE_READ | FILE_SHARE_WRITE,
    null,
    OPEN_ALWAYS,
    FILE_ATTRIBUTE_NORMAL,
    null,
  );
  if (isInvalidHandle(handle)) {
    const code = k32.GetLastError(); // at once: the next FFI call may overwrite it
    throw new Win32Error("CreateFileW", code, path);
  }
  return handle!;
}

/**
 * One non-blocking `LockFileEx` over the whole file: `true` when taken, `false` when another
 * handle holds a conflicting lock (ERROR_LOCK_VIOLATION, or ERROR_IO_PENDING as Rust std also
 * accepts). Two handles in one process conflict like two processes do.
 *
 * A failure with GetLastError 0 is also read as "busy": the code was lost (deno-ffi.md §0.10),
 * and "busy" is the answer that can never hand out a lock we do not hold; at worst the caller
 * times out.
 *
 * Requires `--allow-ffi` (unscoped).
 *
 * @throws {Win32Error} for any other code (e.g. ERROR_INVALID_HANDLE).
 */
export function tryLockHandle(k32: Kernel32, handle: Deno.PointerObject, exclusive: boolean) {
  const flags = LOCKFILE_FAIL_IMMEDIATELY | (exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0);
  const overlapped = _overlapped();
  if (k32.LockFileEx(handle, flags, 0, 0xFFFF_FFFF, 0xFFFF_FFFF, overlapped) !== 0) return true;
  const code = k32.GetLastError();
  if (code === ERROR_LOCK_VIOLATION || code === ERROR_IO_PENDING || code === 0) return false;
  throw new Win32Error("LockFileEx", code);
}

/**
 * `UnlockFileEx` over the same range, then `CloseHandle`, which always runs. Closing (or dying)
 * releases the lock too, but the LockFileEx documentation warns that the time the system takes
 * for that "depends upon available system resources" and recommends unlocking explicitly.
 * Call it once per handle.
 *
 * @param locked `false` to only close a handle that never got the lock.
 * @throws {Win32Error} when unlock or close fail (the handle is closed either way).
 */
export function unlockAndCloseHandle(
  k32: Kernel32,
  handle: Deno.PointerObject,
  locked = true,
): void {
  let failure: Win32Error | undefined;
  if (locked && k32.UnlockFileEx(handle, 0, 0xFFFF_FFFF, 0xFFFF_FFFF, _overlapped()) === 0) {
    failure = new Win32Error("UnlockFileEx", k32.GetLastError());
  }
  if (k32.CloseHandle(handle) === 0) failure ??= new Win32Error("CloseHandle", k32.GetLastError());
  if (failure) throw failure;
}
