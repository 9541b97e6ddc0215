/**
 * `flock(2)` through libc for the cross-process lock (SPEC.md §1.4): the raw symbol tables, the
 * per-OS constants, and a small safe wrapper that turns `-1`/errno into {@linkcode PosixError}.
 *
 * Why FFI and not `Deno.FsFile.lock`: the design card asks for it. Deno 2 exposes no fd of an
 * `FsFile`, so the fd comes from libc `open` too.
 *
 * Facts this file depends on (research notes `deno-ffi.md` §0.6-0.10 and §4.2):
 * - `open` is variadic (`int open(const char *, int, ...)`) and Deno FFI has no variadic calls.
 *   On Apple arm64 variadic arguments go on the stack, so a `mode` passed as a third "normal"
 *   argument would be garbage there. We declare only the two fixed parameters and never pass
 *   `O_CREAT`, so `open` never reads `mode`: the file is created beforehand with Deno's own API.
 * - There is no errno preservation in Deno FFI: errno is read right after the failing call, on the
 *   same (main) thread, through `__errno_location()` (glibc) / `__error()` (macOS).
 * - The library is opened lazily on the first call, so importing this module costs nothing and
 *   needs no permission (and never opens libc on Windows).
 *
 * Linux means glibc (`libc.so.6`); musl is not supported (Deno itself needs glibc).
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// Raw tables
// ---------------------------------------------------------------------------------------------

/** Symbols shared by glibc and libSystem. Every C signature is in the comment above it. */
const COMMON_SYMBOLS = {
  // int open(const char *path, int oflag, ...);
  // VARIADIC: declared with the fixed parameters only; never called with O_CREAT (see @module).
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // int flock(int fd, int operation);
  flock: { parameters: ["i32", "i32"], result: "i32" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // ssize_t write(int fd, const void *buf, size_t count);
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
} as const satisfies Deno.ForeignLibraryInterface;

/** glibc `libc.so.6`. */
const LINUX_SYMBOLS = {
  ...COMMON_SYMBOLS,
  // int *__errno_location(void);   (the thread's errno, what the `errno` macro expands to)
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** macOS `/usr/lib/libSystem.B.dylib`. */
const DARWIN_SYMBOLS = {
  ...COMMON_SYMBOLS,
  // int *__error(void);   (the thread's errno, what the `errno` macro expands to)
  __error: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The constants this file needs; values differ between Linux and macOS. */
export interface PosixConstants {
  readonly O_RDWR: number;
  readonly O_CLOEXEC: number;
  readonly LOCK_SH: number;
  readonly LOCK_EX: number;
  readonly LOCK_NB: number;
  readonly LOCK_UN: number;
  /** Equal to EAGAIN on both OSes; what `flock(LOCK_NB)` sets when the lock is held. */
  readonly EWOULDBLOCK: number;
  readonly EINTR: number;
  readonly ENOENT: number;
  /** Names for the errno values we are likely to see, for error messages. */
  readonly errnoNames: Readonly<Record<number, string>>;
}

/** errno values 1-30 are the same on Linux and macOS (both inherit them from V7 Unix). */
const COMMON_ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  12: "ENOMEM",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  26: "ETXTBSY",
  28: "ENOSPC",
  30: "EROFS",
};

/**
 * Linux x86_64 and aarch64: both use asm-generic `fcntl.h`/`errno.h` (arm64 only overrides
 * O_DIRECTORY, O_NOFOLLOW, O_DIRECT, O_LARGEFILE), so O_CLOEXEC is 0o2000000 on both.
 */
export const LINUX_CONSTANTS: PosixConstants = {
  O_RDWR: 0o2,
  O_CLOEXEC: 0o2000000,
  LOCK_SH: 1,
  LOCK_EX: 2,
  LOCK_NB: 4,
  LOCK_UN: 8,
  EWOULDBLOCK: 11,
  EINTR: 4,
  ENOENT: 2,
  errnoNames: {
    ...COMMON_ERRNO,
    11: "EAGAIN",
    36: "ENAMETOOLONG",
    37: "ENOLCK",
    40: "ELOOP",
    95: "EOPNOTSUPP",
    122: "EDQUOT",
  },
};

/** macOS (xnu `sys/fcntl.h`, `sys/errno.h`), identical on x86_64 and arm64. */
export const DARWIN_CONSTANTS: PosixConstants = {
  O_RDWR: 0x2,
  O_CLOEXEC: 0x1000000,
  LOCK_SH: 1,
  LOCK_EX: 2,
  LOCK_NB: 4,
  LOCK_UN: 8,
  EWOULDBLOCK: 35,
  EINTR: 4,
  ENOENT: 2,
  errnoNames: {
    ...COMMON_ERRNO,
    35: "EAGAIN",
    45: "ENOTSUP",
    62: "ELOOP",
    63: "ENAMETOOLONG",
    69: "EDQUOT",
    77: "ENOLCK",
    102: "EOPNOTSUPP",
  },
};

/** The loaded library, normalised over the two errno symbols. */
interface _Libc {
  readonly c: PosixConstants;
  open(path: Uint8Array, flags: number): number;
  flock(fd: number, operation: number): number;
  close(fd: number): number;
  write(fd: number, buf: Uint8Array, count: bigint): bigint;
  /** Current errno; call it immediately after the failing call, before any other FFI call. */
  errno(): number;
}

let _loaded: _Libc | undefined;

/** Opens libc on first use only (STYLE.md §3: never open another OS's library). */
function _libc(): _Libc {
  if (_loaded) return _loaded;
  const os = Deno.build.os;
  if (os === "linux") {
    const lib = _dlopen("libc.so.6", LINUX_SYMBOLS);
    const s = lib.symbols;
    _loaded = {
      c: LINUX_CONSTANTS,
      open: s.open,
      flock: s.flock,
      close: s.close,
      write: s.write,
      errno: () => _readInt(s.__errno_location()),
    };
  } else if (os === "darwin") {
    const lib = _dlopen("/usr/lib/libSystem.B.dylib", DARWIN_SYMBOLS);
    const s = lib.symbols;
    _loaded = {
      c: DARWIN_CONSTANTS,
      open: s.open,
      flock: s.flock,
      close: s.close,
      write: s.write,
      errno: () => _readInt(s.__error()),
    };
  } else {
    throw new Error(`flock through libc is not supported on ${os}: only linux and darwin are`);
  }
  return _loaded;
}

function _dlopen<S extends Deno.ForeignLibraryInterface>(
  name: string,
  symbols: S,
): Deno.DynamicLibrary<S> {
  try {
    return Deno.dlopen(name, symbols);
  } catch (error) {
    // A missing --allow-ffi stays a NotCapable, so the caller sees which flag is missing.
    if (error instanceof Deno.errors.NotCapable) throw error;
    const message = _message(error);
    // denoland/deno#29246: a scoped --allow-ffi=libc.so.6 makes Deno look for ./libc.so.6.
    const hint = !name.startsWith("/") && message.includes(`/${name}`)
      ? " (grant --allow-ffi unscoped, denoland/deno#29246)"
      : "";
    throw new Error(`Cannot load ${name} for file locking: ${message}${hint}`, { cause: error });
  }
}

function _readInt(pointer: Deno.PointerValue): number {
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32(0);
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------
// Safe wrapper
// ---------------------------------------------------------------------------------------------

/** A libc call failed; keeps the errno number and its symbolic name. */
export class PosixError extends Error {
  /** The raw errno value (OS-specific numbering). */
  readonly errno: number;
  /** Symbolic name such as `EBADF`, or `errno N` when unknown. */
  readonly code: string;
  constructor(call: string, errno: number, code: string, detail?: string) {
    super(`${call} failed${detail ? ` for ${detail}` : ""}: ${code} (errno ${errno})`);
    this.errno = errno;
    this.code = code;
    this.name = "PosixError";
  }
}

function _error(lib: _Libc, call: string, errno: number, detail?: string): PosixError {
  return new PosixError(call, errno, lib.c.errnoNames[errno] ?? `errno ${errno}`, detail);
}

/**
 * Opens (creating if needed, mode 0600) the lock file and returns a raw fd for {@linkcode tryFlock}.
 *
 * The file is created with `Deno.writeFileSync(…, {append: true, mode: 0o600})`, which never
 * truncates an existing file (other processes hold fds to it) and sets its mode to 0600. Only then
 * is it opened through FFI with `O_RDWR | O_CLOEXEC` and without `O_CREAT`, so the variadic `mode`
 * argument of `open` is never read. `O_CLOEXEC` matters: without it a child we spawn (the browser
 * opener) would inherit the fd, share the lock's open file description and keep the lock held
 * after we exit. The parent directory must exist; it is not created here.
 *
 * Requires `--allow-ffi` (unscoped: `--allow-ffi=libc.so.6` breaks the soname lookup,
 * denoland/deno#29246) and `--allow-read`/`--allow-write` for `path`.
 *
 * @throws {Deno.errors.NotFound} when the directory does not exist.
 * @throws {PosixError} when `open(2)` fails.
 */
export function openLockFd(path: string): number {
  if (path.includes("\0")) throw new TypeError(`Lock file path contains a NUL byte: ${path}`);
  const lib = _libc();
  const cPath = new TextEncoder().encode(`${path}\0`);
  const flags = lib.c.O_RDWR | lib.c.O_CLOEXEC;
  // Two tries: the file is never deleted by us, but if someone removes it between the create
  // and the open, recreating once is cheap.
  for (let attempt = 0;; attempt++) {
    Deno.writeFileSync(path, new Uint8Array(), { append: true, mode: 0o600 });
    let fd: number;
    let errno: number;
    do {
      fd = lib.open(cPath, flags);
      errno = fd === -1 ? lib.errno() : 0; // read at once: the next FFI call may clobber it
    } while (fd === -1 && errno === lib.c.EINTR);
    if (fd !== -1) return fd;
    if (errno === lib.c.ENOENT && attempt === 0) continue;
    throw _error(lib, "open", errno, path);
  }
}

/**
 * Non-blocking `flock(fd, LOCK_EX|LOCK_NB)` (or `LOCK_SH|LOCK_NB`): `true` when taken, `false`
 * when another open file description holds a conflicting lock (EWOULDBLOCK). Retries on EINTR.
 *
 * There is deliberately no blocking variant: a blocking FFI call cannot be cancelled, and made
 * `nonblocking` it keeps the process alive until it returns (research notes `deno-ffi.md` §0.6). Poll this instead.
 * flock locks belong to the open file description, so two fds from two {@linkcode openLockFd}
 * calls in one process conflict like two processes do. The kernel drops the lock when the last
 * fd of the description is closed, including on process death: there is no stale lock.
 *
 * Requires `--allow-ffi` (unscoped, denoland/deno#29246).
 *
 * @throws {PosixError} for any errno other than EWOULDBLOCK/EINTR (e.g. EBADF, ENOLCK).
 */
export function tryFlock(fd: number, exclusive: boolean): boolean {
  const lib = _libc();
  const operation = (exclusive ? lib.c.LOCK_EX : lib.c.LOCK_SH) | lib.c.LOCK_NB;
  for (;;) {
    if (lib.flock(fd, operation) === 0) return true;
    const errno = lib.errno(); // read at once: the next FFI call may clobber it
    if (errno === lib.c.EWOULDBLOCK) return false;
    if (errno !== lib.c.EINTR) throw _error(lib, "flock", errno, `fd ${fd}`);
  }
}

/**
 * `flock(fd, LOCK_UN)` then `close(fd)`. The explicit unlock is defensive (close alone drops the
 * lock unless the description was shared with a child); close always runs. `close` is not retried
 * on EINTR: the fd is already released then, and a retry could close an fd reused by other code.
 * Call it once per fd; callers make their release idempotent.
 *
 * Requires `--allow-ffi` (unscoped, denoland/deno#29246).
 *
 * @throws {PosixError} when unlock or close fail (EBADF means the fd was already closed: a bug).
 */
export function unlockAndClose(fd: number): void {
  const lib = _libc();
  let failure: PosixError | undefined;
  for (;;) {
    if (lib.flock(fd, lib.c.LOCK_UN) === 0) break;
    const errno = lib.errno();
    if (errno === lib.c.EINTR) continue;
    failure = _error(lib, "flock(LOCK_UN)", errno, `fd ${fd}`);
    break;
  }
  if (lib.close(fd) === -1) {
    const errno = lib.errno();
    if (errno !== lib.c.EINTR) failure ??= _error(lib, "close", errno, `fd ${fd}`);
  }
  if (failure) throw failure;
}

/**
 * Opens the controlling terminal `/dev/tty` for writing, or `null` when there is none (no
 * session terminal, as under a daemon or Claude Code's `-p` mode).
 *
 * Through libc rather than `Deno.openSync`: Deno asks for `--allow-all` to open `/dev/tty`,
 * and the binary's permission list stays explicit. Under Claude Code's TUI this is how the
 * helper finds the user's terminal although none of its standard streams is one (SPEC.md §1.3).
 *
 * Requires `--allow-ffi` (unscoped).
 */
export function openControllingTerminal(): number | null {
  let lib: _Libc;
  try {
    lib = _libc();
  } catch {
    return null;
  }
  const fd = lib.open(new TextEncoder().encode("/dev/tty\0"), lib.c.O_RDWR | lib.c.O_CLOEXEC);
  return fd === -1 ? null : fd;
}

/** Writes all of `bytes` to `fd` (a terminal from {@linkcode openControllingTerminal}); best effort. */
export function writeFd(fd: number, bytes: Uint8Array): boolean {
  const lib = _libc();
  let off = 0;
  while (off < bytes.length) {
    const chunk = bytes.subarray(off);
    const n = Number(lib.write(fd, chunk, BigInt(chunk.length)));
    if (n <= 0) {
      if (n === -1 && lib.errno() === lib.c.EINTR) continue;
      return false;
    }
    off += n;
  }
  return true;
}

/** Closes an fd from {@linkcode openControllingTerminal}. */
export function closeFd(fd: number): void {
  _libc().close(fd);
}
