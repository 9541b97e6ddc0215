/**
 * Windows Credential Manager (`advapi32.dll`) through Deno FFI: the raw symbol table, the x64
 * `CREDENTIALW` layout encoded and decoded through a `DataView`, and a safe wrapper of four
 * operations on generic credentials that frees what Windows returns (`CredFree` in `finally`) and
 * turns `FALSE` + `GetLastError` into a {@linkcode CredentialError} (a `StoreError`) keeping the
 * number. Chunking values over the 2,560-byte blob cap is the store's job
 * (`src/store/windows_credential_manager.ts`); this layer refuses a larger blob.
 *
 * Written from the Win32 documentation cited below; run for real by the Windows build of Deno
 * under Wine 10 (`deno task test:windows`, in CI: the ABI, the chunking, concurrent writers and
 * readers, the CLI end to end) and by the tests gated on `Deno.build.os === "windows"` on the
 * windows-latest runners; unit-tested anywhere against a fake symbol table
 * (`test/fixtures/fake_advapi32.ts`) for what neither can provoke (a lost `GetLastError`, an SSH
 * logon's 1312).
 *
 * Why it looks the way it does:
 * - Every call is synchronous, never `nonblocking`: `GetLastError` is per thread and must be read
 *   right after the failing call on the same thread (deno-ffi.md §0.10). Credential Manager
 *   calls are local RPCs to LSA that never show UI for `CRED_TYPE_GENERIC`, so they do not hang
 *   the way a Secret Service can; that is why they are not raced against the store timeout (a
 *   synchronous call cannot be raced anyway).
 * - A 0 from `GetLastError` after a failure is possible (node-ffi#261, koffi#112: the runtime
 *   can clobber it; one plausible path is `TlsGetValue`, which V8 uses for thread-local storage
 *   on Windows and which is documented to clear the last error when it succeeds). A 0 is never
 *   read as "not found": the wrapper then decides existence from BOOL results alone
 *   (`CredEnumerateW`, with a probe credential if needed) and otherwise reports a failure.
 * - Target names are UTF-16LE (`LPCWSTR`); blobs are opaque bytes (the store writes UTF-8,
 *   half the size of UTF-16, as Bun, keytar and go-keyring do).
 * - Both DLLs are opened lazily on first use: importing this module opens nothing, so it
 *   type-checks and imports on Linux and macOS.
 *
 * @module
 */

import { StoreError, type StoreFailure } from "../errors.ts";
import { kernel32Symbols, readWide, toWide, win32ErrorName } from "./kernel32.ts";

// ---------------------------------------------------------------------------------------------
// Raw symbol table (wincred.h; MicrosoftDocs/sdk-api `nf-wincred-cred*w.md`)
// ---------------------------------------------------------------------------------------------

/** advapi32 symbols, each with its C declaration. All synchronous (see @module). */
export const advapi32Symbols = {
  // BOOL CredWriteW(PCREDENTIALW Credential, DWORD Flags);
  CredWriteW: {
    parameters: [
      "buffer", // PCREDENTIALW Credential: an 80-byte CREDENTIALW (encodeCredential)
      "u32", // DWORD Flags: 0 (CRED_PRESERVE_CREDENTIAL_BLOB is for other types)
    ],
    result: "i32", // BOOL
  },
  // BOOL CredReadW(LPCWSTR TargetName, DWORD Type, DWORD Flags, PCREDENTIALW *Credential);
  CredReadW: {
    parameters: [
      "buffer", // LPCWSTR TargetName
      "u32", // DWORD Type: CRED_TYPE_GENERIC
      "u32", // DWORD Flags: 0
      "buffer", // PCREDENTIALW *Credential: out, one allocated block; free with CredFree
    ],
    result: "i32", // BOOL
  },
  // BOOL CredDeleteW(LPCWSTR TargetName, DWORD Type, DWORD Flags);
  CredDeleteW: {
    parameters: [
      "buffer", // LPCWSTR TargetName
      "u32", // DWORD Type: CRED_TYPE_GENERIC
      "u32", // DWORD Flags: 0
    ],
    result: "i32", // BOOL
  },
  // BOOL CredEnumerateW(LPCWSTR Filter, DWORD Flags, DWORD *Count, PCREDENTIALW **Credential);
  CredEnumerateW: {
    parameters: [
      "buffer", // LPCWSTR Filter: "prefix*" (a name prefix followed by an asterisk)
      "u32", // DWORD Flags: 0 (CRED_ENUMERATE_ALL_CREDENTIALS is only valid with a NULL filter)
      "buffer", // DWORD *Count: out
      "buffer", // PCREDENTIALW **Credential: out, an array of pointers in one block; CredFree it
    ],
    result: "i32", // BOOL; FALSE with ERROR_NOT_FOUND when nothing matches
  },
  // VOID CredFree(PVOID Buffer);
  CredFree: {
    parameters: ["pointer"], // PVOID Buffer: what CredReadW / CredEnumerateW returned
    result: "void",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The symbols the wrapper calls: advapi32 plus kernel32's `GetLastError`. Tests pass a fake. */
export type CredentialNative =
  & Deno.StaticForeignLibraryInterface<typeof advapi32Symbols>
  & Pick<Deno.StaticForeignLibraryInterface<typeof kernel32Symbols>, "GetLastError">;

// ---------------------------------------------------------------------------------------------
// Constants (wincred.h, winerror.h)
// ---------------------------------------------------------------------------------------------

/** wincred.h: a generic credential, not used by any authentication package. */
export const CRED_TYPE_GENERIC = 1;
/** wincred.h: persists for this user on this computer, across logons; does not roam. */
export const CRED_PERSIST_LOCAL_MACHINE = 2;
/**
 * wincred.h: `CRED_MAX_CREDENTIAL_BLOB_SIZE` is `(5*512)`. The CREDENTIALW doc page still says
 * 512 (AdysTech/CredentialManager#65); others measured 2,560 accepted and 2,561 refused.
 */
export const CRED_MAX_CREDENTIAL_BLOB_SIZE = 2560;
/** wincred.h: `CRED_MAX_GENERIC_TARGET_NAME_LENGTH`, in characters. */
export const CRED_MAX_GENERIC_TARGET_NAME_LENGTH = 32767;
/** wincred.h: `CRED_MAX_USERNAME_LENGTH`, in characters. */
export const CRED_MAX_USERNAME_LENGTH = 513;

/** CredEnumerateW calls that may meet a concurrent delete (ERROR_KEY_DELETED) before failing. */
const ENUMERATE_ATTEMPTS = 3;

/** The name (plus `-<random>`) of the throw-away credential that settles a lost error code. */
export const PROBE_NAME = "agent-runner-probe";

/** winerror.h: no credential with that target (CredRead/CredDelete/CredEnumerate). */
export const ERROR_NOT_FOUND = 1168;
/**
 * winerror.h: "Illegal operation attempted on a registry key that has been marked for deletion".
 * Seen under Wine, whose Credential Manager keeps each credential as a registry key, when a
 * CredReadW or CredDeleteW meets a CredDeleteW of the same credential in another process: the
 * credential is being deleted, so it reads as missing.
 */
export const ERROR_KEY_DELETED = 1018;
/** winerror.h: the logon session has no credential set, e.g. an SSH (network) logon. */
export const ERROR_NO_SUCH_LOGON_SESSION = 1312;
/** winerror.h: what CredWriteW reports for a blob over the cap ("The stub received bad data"). */
export const RPC_X_BAD_STUB_DATA = 1783;
/** winerror.h */
export const ERROR_INVALID_PARAMETER = 87;
/** winerror.h */
export const ERROR_INVALID_FLAGS = 1004;
/** winerror.h: CredWriteW with a UserName the type does not accept. */
export const ERROR_BAD_USERNAME = 2202;
/** winerror.h: the RPC server (LSA / the credential service) could not be reached. */
export const RPC_S_SERVER_UNAVAILABLE = 1722;

const CREDENTIAL_ERROR_NAMES: Readonly<Record<number, string>> = {
  [ERROR_NOT_FOUND]: "ERROR_NOT_FOUND",
  [ERROR_KEY_DELETED]: "ERROR_KEY_DELETED",
  [ERROR_NO_SUCH_LOGON_SESSION]: "ERROR_NO_SUCH_LOGON_SESSION",
  [RPC_X_BAD_STUB_DATA]: "RPC_X_BAD_STUB_DATA",
  [ERROR_INVALID_PARAMETER]: "ERROR_INVALID_PARAMETER",
  [ERROR_INVALID_FLAGS]: "ERROR_INVALID_FLAGS",
  [ERROR_BAD_USERNAME]: "ERROR_BAD_USERNAME",
  [RPC_S_SERVER_UNAVAILABLE]: "RPC_S_SERVER_UNAVAILABLE",
  1: "ERROR_INVALID_FUNCTION",
  5: "ERROR_ACCESS_DENIED",
  8: "ERROR_NOT_ENOUGH_MEMORY",
};

// ---------------------------------------------------------------------------------------------
// CREDENTIALW on x64 / arm64 (LLP64: pointers 8 bytes, DWORD 4, FILETIME = 2 DWORDs, align 4)
// ---------------------------------------------------------------------------------------------

/** sizeof(CREDENTIALW) on 64-bit Windows. */
export const CREDENTIALW_SIZE = 80;

/**
 * Field offsets of `CREDENTIALW` (wincred.h; field order from MicrosoftDocs/sdk-api
 * `ns-wincred-credentialw.md`), from C layout rules on a 64-bit target:
 * `DWORD Flags; DWORD Type;` fill 0-7; the `LPWSTR`s are 8-aligned at 8 and 16;
 * `FILETIME LastWritten` (two DWORDs, 4-aligned) takes 24-31; `DWORD CredentialBlobSize` is at 32
 * and 4 bytes of padding follow so `LPBYTE CredentialBlob` is 8-aligned at 40; `DWORD Persist;
 * DWORD AttributeCount;` 48, 52; then three pointers at 56, 64, 72: 80 bytes, no tail padding.
 * The same offsets appear in public Deno and Go (wincred) code.
 */
export const CREDENTIALW = {
  Flags: 0,
  Type: 4,
  TargetName: 8,
  Comment: 16,
  LastWritten: 24,
  CredentialBlobSize: 32,
  CredentialBlob: 40,
  Persist: 48,
  AttributeCount: 52,
  Attributes: 56,
  TargetAlias: 64,
  UserName: 72,
} as const;

/** What {@linkcode encodeCredential} writes. */
export interface CredentialInput {
  targetName: string;
  blob: Uint8Array;
  userName?: string;
  persist?: number;
}

/** An encoded `CREDENTIALW` plus the buffers its pointers point into. */
export interface EncodedCredential {
  /** The 80 bytes to pass as `PCREDENTIALW`. */
  struct: Uint8Array;
  /** Keep these referenced until the call has returned; wipe them after. */
  keepAlive: Uint8Array[];
}

/**
 * Lays out a generic `CREDENTIALW` for `CredWriteW`: Flags 0, Type CRED_TYPE_GENERIC, the
 * target, a copy of the blob, the persistence (default CRED_PERSIST_LOCAL_MACHINE) and the user
 * name (shown in Control Panel; ignored by Windows for generic credentials). Comment, Attributes
 * and TargetAlias stay NULL/0; LastWritten is ignored on write.
 *
 * Requires `--allow-ffi` (it takes the buffers' addresses).
 *
 * @throws {TypeError} for a NUL in a string; {@linkcode RangeError} for a blob over the cap or a
 * name over its documented maximum.
 */
export function encodeCredential(input: CredentialInput): EncodedCredential {
  const { targetName, blob, userName, persist = CRED_PERSIST_LOCAL_MACHINE } = input;
  if (blob.length > CRED_MAX_CREDENTIAL_BLOB_SIZE) {
    throw new RangeError(
      `A credential blob is limited to ${CRED_MAX_CREDENTIAL_BLOB_SIZE} bytes, got ${blob.length}`,
    );
  }
  if (targetName.length === 0 || targetName.length > CRED_MAX_GENERIC_TARGET_NAME_LENGTH) {
    throw new RangeError(`A credential target name must have 1 to 32767 characters`);
  }
  if (userName !== undefined && userName.length > CRED_MAX_USERNAME_LENGTH) {
    throw new RangeError(`A credential user name is limited to 513 characters`);
  }
  const target = toWide(targetName);
  const user = userName === undefined ? null : toWide(userName);
  const data = blob.slice(); // our own copy, wiped after the call
  const struct = new Uint8Array(CREDENTIALW_SIZE);
  const view = new DataView(struct.buffer);
  view.setUint32(CREDENTIALW.Flags, 0, true);
  view.setUint32(CREDENTIALW.Type, CRED_TYPE_GENERIC, true);
  view.setBigUint64(CREDENTIALW.TargetName, addressOf(target), true);
  view.setUint32(CREDENTIALW.CredentialBlobSize, data.length, true);
  view.setBigUint64(CREDENTIALW.CredentialBlob, data.length ? addressOf(data) : 0n, true);
  view.setUint32(CREDENTIALW.Persist, persist, true);
  view.setBigUint64(CREDENTIALW.UserName, user ? addressOf(user) : 0n, true);
  return { struct, keepAlive: user ? [target, data, user] : [target, data] };
}

/** A `CREDENTIALW` read out of native memory; every field copied. */
export interface DecodedCredential {
  flags: number;
  type: number;
  targetName: string | null;
  comment: string | null;
  blob: Uint8Array;
  persist: number;
  attributeCount: number;
  userName: string | null;
}

/**
 * Copies a `CREDENTIALW` that Windows returned (from `CredReadW`/`CredEnumerateW`) into JS values;
 * the caller still frees the native block.
 *
 * Requires `--allow-ffi`.
 */
export function decodeCredential(pointer: Deno.PointerObject): DecodedCredential {
  const view = new Deno.UnsafePointerView(pointer);
  const size = view.getUint32(CREDENTIALW.CredentialBlobSize);
  const blobPointer = view.getPointer(CREDENTIALW.CredentialBlob);
  if (size > 0 && blobPointer === null) {
    throw new RangeError(`A credential has a ${size}-byte blob but a NULL CredentialBlob`);
  }
  return {
    flags: view.getUint32(CREDENTIALW.Flags),
    type: view.getUint32(CREDENTIALW.Type),
    targetName: readWide(view.getPointer(CREDENTIALW.TargetName)),
    comment: readWide(view.getPointer(CREDENTIALW.Comment)),
    blob: size === 0
      ? new Uint8Array()
      : new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(blobPointer!, size)).slice(),
    persist: view.getUint32(CREDENTIALW.Persist),
    attributeCount: view.getUint32(CREDENTIALW.AttributeCount),
    userName: readWide(view.getPointer(CREDENTIALW.UserName)),
  };
}

function addressOf(buffer: Uint8Array): bigint {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** A Credential Manager call failed; keeps the Win32 code. Messages never carry a secret. */
export class CredentialError extends StoreError {
  /** The `GetLastError` value (0 when Windows reported none). */
  readonly win32Error: number;
  /** The function that failed, e.g. `CredReadW`. */
  readonly call: string;
  constructor(failure: StoreFailure, call: string, win32Error: number, message: string) {
    super(failure, message);
    this.win32Error = win32Error;
    this.call = call;
    this.name = "CredentialError";
  }
}

/** The symbolic name of a Credential Manager error code. */
export function credentialErrorName(code: number): string {
  return CREDENTIAL_ERROR_NAMES[code] ?? win32ErrorName(code);
}

/**
 * Maps a failed call's Win32 code to the store failure a user can act on. Pure, so the table is
 * unit-tested. ERROR_NOT_FOUND never gets here from a read or delete (that is `null`/`false`).
 */
export function credentialError(call: string, code: number, target: string): CredentialError {
  const what = `${credentialErrorName(code)}, ${code}`;
  switch (code) {
    case ERROR_NO_SUCH_LOGON_SESSION:
      return new CredentialError(
        "unavailable",
        call,
        code,
        `Windows Credential Manager is not available in this logon session (${call}: ${what}): ` +
          `SSH and other network logons have no credential set; run agent-runner-auth from a ` +
          `console or RDP session, or choose AGENT_RUNNER_STORE=encrypted-file`,
      );
    case RPC_S_SERVER_UNAVAILABLE:
      return new CredentialError(
        "unavailable",
        call,
        code,
        `Windows Credential Manager could not be reached (${call}: ${what}): check that the ` +
          `Credential Manager service (VaultSvc) is running`,
      );
    case RPC_X_BAD_STUB_DATA:
      return new CredentialError(
        "failed",
        call,
        code,
        `Windows Credential Manager refused ${target} (${call}: ${what}): the value is larger ` +
          `than the ${CRED_MAX_CREDENTIAL_BLOB_SIZE}-byte limit`,
      );
    case 0:
      return new CredentialError(
        "failed",
        call,
        code,
        `Windows Credential Manager ${call} failed for ${target} and Windows reported no ` +
          `error code (GetLastError returned 0)`,
      );
    default:
      return new CredentialError(
        "failed",
        call,
        code,
        `Windows Credential Manager ${call} failed for ${target}: ${what}`,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

let _loaded: CredentialNative | undefined;

/**
 * The real advapi32 (+ kernel32 `GetLastError`), opened on first use by bare DLL name, which
 * needs an unscoped `--allow-ffi` (denoland/deno#29246).
 *
 * @throws {StoreError} "unavailable" off Windows or when a DLL cannot be loaded.
 */
export function loadAdvapi32(): CredentialNative {
  if (_loaded) return _loaded;
  if (Deno.build.os !== "windows") {
    throw new StoreError(
      "unavailable",
      `Windows Credential Manager exists only on Windows, not on ${Deno.build.os}`,
    );
  }
  let advapi32, kernel32;
  try {
    advapi32 = Deno.dlopen("advapi32.dll", advapi32Symbols);
    kernel32 = Deno.dlopen("kernel32.dll", { GetLastError: kernel32Symbols.GetLastError });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error; // names the missing --allow-ffi
    advapi32?.close();
    throw new StoreError(
      "unavailable",
      `Windows Credential Manager unavailable: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
  _loaded = { ...advapi32.symbols, GetLastError: kernel32.symbols.GetLastError };
  return _loaded;
}

// ---------------------------------------------------------------------------------------------
// Safe wrapper
// ---------------------------------------------------------------------------------------------

/** The four operations the store needs, on generic credentials; tests may fake this too. */
export interface CredentialApi {
  /** The blob of `target`, or `null` when there is no such credential. */
  read(target: string): Uint8Array | null;
  /** Creates or replaces `target` (CRED_PERSIST_LOCAL_MACHINE). */
  write(target: string, blob: Uint8Array, userName: string): void;
  /** Deletes `target`; `false` when there was none. */
  delete(target: string): boolean;
  /** Target names of the generic credentials whose name starts with `prefix`. */
  list(prefix: string): string[];
}

/**
 * Generic credentials in the current user's Credential Manager.
 *
 * Every method requires `--allow-ffi` (unscoped) and throws {@linkcode CredentialError}:
 * "unavailable" for ERROR_NO_SUCH_LOGON_SESSION (1312, SSH), "failed" otherwise, always with the
 * Win32 code. Off Windows the default constructor works, and the first call throws
 * `StoreError("unavailable")`.
 */
export class CredentialManager implements CredentialApi {
  readonly #native: () => CredentialNative;

  /** @param native the symbols to call; tests pass a fake. Default: the real DLLs, lazily. */
  constructor(native?: CredentialNative) {
    this.#native = native ? () => native : loadAdvapi32;
  }

  read(target: string): Uint8Array | null {
    const native = this.#native();
    const out = new BigUint64Array(1); // PCREDENTIALW
    const ok = native.CredReadW(toWide(target), CRED_TYPE_GENERIC, 0, out);
    const code = ok ? 0 : native.GetLastError(); // at once: the next FFI call may overwrite it
    if (!ok) {
      if (code === ERROR_NOT_FOUND || code === ERROR_KEY_DELETED) return null;
      if (code === 0 && !this.#exists(target, "CredReadW")) return null;
      throw credentialError("CredReadW", code, target);
    }
    const pointer = Deno.UnsafePointer.create(out[0]);
    if (pointer === null) throw credentialError("CredReadW", 0, target);
    try {
      const credential = decodeCredential(pointer);
      // A self-check of the layout: if an offset were wrong, this is where it would show.
      if (
        credential.type !== CRED_TYPE_GENERIC ||
        credential.targetName?.toLowerCase() !== target.toLowerCase()
      ) {
        throw new CredentialError(
          "failed",
          "CredReadW",
          0,
          `Windows Credential Manager returned a credential that does not match ${target} ` +
            `(type ${credential.type}): the CREDENTIALW layout assumed here is wrong`,
        );
      }
      return credential.blob;
    } finally {
      native.CredFree(pointer);
    }
  }

  write(target: string, blob: Uint8Array, userName: string): void {
    const native = this.#native();
    const { struct, keepAlive } = encodeCredential({ targetName: target, blob, userName });
    const ok = native.CredWriteW(struct, 0);
    const code = ok ? 0 : native.GetLastError();
    for (const buffer of keepAlive) buffer.fill(0); // wipes our copy; keeps them alive until here
    if (!ok) throw credentialError("CredWriteW", code, target);
  }

  delete(target: string): boolean {
    const native = this.#native();
    const ok = native.CredDeleteW(toWide(target), CRED_TYPE_GENERIC, 0);
    const code = ok ? 0 : native.GetLastError();
    if (ok) return true;
    if (code === ERROR_NOT_FOUND || code === ERROR_KEY_DELETED) return false; // gone meanwhile
    if (code === 0 && !this.#exists(target, "CredDeleteW")) return false;
    throw credentialError("CredDeleteW", code, target);
  }

  /**
   * Target names under `prefix`. CredEnumerateW answers FALSE both when nothing matches
   * (ERROR_NOT_FOUND) and when it fails, so a lost code (0) is settled the way
   * {@linkcode CredentialManager.read} settles it: a probe credential is written under the prefix
   * (success is the BOOL, no code needed), the enumeration must then succeed and its list minus
   * the probe is the answer; the probe is deleted right after (a leftover lies under the prefix,
   * where the store's next write removes it). The store calls this after every write and delete,
   * so a lost code never turns a successful write into an error.
   *
   * @throws {CredentialError} when the enumeration fails with a known code, or even the probe
   * cannot tell.
   */
  list(prefix: string): string[] {
    if (prefix.includes("*")) throw new TypeError("A credential prefix cannot contain '*'");
    const names = this.#enumerate(prefix);
    if (names !== undefined) return names;
    const native = this.#native();
    const probe = `${prefix}${prefix.endsWith("/") ? "" : "/"}${PROBE_NAME}-${
      crypto.randomUUID().slice(0, 8)
    }`;
    let probed: string[] | undefined;
    try {
      this.write(probe, new Uint8Array([0]), "probe");
      probed = this.#enumerate(prefix);
    } catch (error) {
      if (!(error instanceof CredentialError && error.win32Error === 0)) throw error;
    } finally {
      native.CredDeleteW(toWide(probe), CRED_TYPE_GENERIC, 0); // best effort, see above
    }
    if (probed === undefined) throw credentialError("CredEnumerateW", 0, `${prefix}*`);
    const lowerProbe = probe.toLowerCase();
    return probed.filter((name) => name.toLowerCase() !== lowerProbe);
  }

  /**
   * One CredEnumerateW: the names, `[]` for ERROR_NOT_FOUND, `undefined` for a lost code. An
   * ERROR_KEY_DELETED (a credential under the prefix was deleted meanwhile, see its doc) is
   * retried a few times: the next enumeration no longer meets that credential.
   */
  #enumerate(prefix: string): string[] | undefined {
    const native = this.#native();
    const count = new Uint32Array(1);
    const out = new BigUint64Array(1); // PCREDENTIALW *
    let ok = 0;
    let code = 0;
    for (let attempt = 1; attempt <= ENUMERATE_ATTEMPTS; attempt++) {
      ok = native.CredEnumerateW(toWide(`${prefix}*`), 0, count, out);
      code = ok ? 0 : native.GetLastError();
      if (code !== ERROR_KEY_DELETED) break;
    }
    if (!ok) {
      if (code === ERROR_NOT_FOUND) return [];
      if (code === 0) return undefined;
      throw credentialError("CredEnumerateW", code, `${prefix}*`);
    }
    const array = Deno.UnsafePointer.create(out[0]);
    if (array === null) return [];
    try {
      const pointers = new Deno.UnsafePointerView(array);
      const names: string[] = [];
      for (let i = 0; i < count[0]; i++) {
        const entry = pointers.getPointer(i * 8);
        if (entry === null) continue;
        const view = new Deno.UnsafePointerView(entry);
        if (view.getUint32(CREDENTIALW.Type) !== CRED_TYPE_GENERIC) continue;
        const name = readWide(view.getPointer(CREDENTIALW.TargetName));
        if (name !== null) names.push(name);
      }
      return names;
    } finally {
      native.CredFree(array); // one block holds the array and every credential it points to
    }
  }

  /**
   * Whether `target` exists, decided without trusting an error code: called when a failed
   * call's code was lost (0). `list(target)` settles it from BOOL results alone (see
   * {@linkcode CredentialManager.list}) and throws when even that cannot tell, so a lost code is
   * never read as "not found".
   */
  #exists(target: string, call: string): boolean {
    let names: string[];
    try {
      names = this.list(target);
    } catch (error) {
      if (error instanceof CredentialError && error.win32Error === 0) {
        throw credentialError(call, 0, target);
      }
      throw error;
    }
    const wanted = target.toLowerCase();
    return names.some((name) => name.toLowerCase() === wanted);
  }
}
