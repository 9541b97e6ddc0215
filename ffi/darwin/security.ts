/**
 * The macOS Keychain through Deno FFI: raw symbol tables for Security.framework's SecItem API
 * and the CoreFoundation calls it needs, then a safe wrapper of four operations on generic
 * passwords (find, add, update in place, delete) that releases every CF object it creates or
 * receives, bounds every call that may prompt by the store timeout, and turns an OSStatus into a
 * {@linkcode KeychainError} (a `StoreError`) that keeps the number.
 *
 * NOT executed on macOS yet: written from Apple's headers (SecBase.h, SecItem.h, CFDictionary.h,
 * CFString.h, CFData.h) and reference code (zalando/go-keyring `internal/darwin`, Bun's
 * `SecretsDarwin.cpp`; research notes `deno-ffi.md` §1.4), and unit-tested on Linux against a fake
 * symbol table (`test/fixtures/fake_security.ts`). `test/store_macos_keychain_test.ts` runs it
 * for real on a Mac.
 *
 * Why it looks the way it does:
 * - SecItem* rather than the SecKeychain* calls deprecated since 10.10. Without
 *   `kSecUseDataProtectionKeychain` both reach the same file-based login keychain, with the same
 *   per-item access list ("Always Allow") and the same prompts (deno-ffi.md §1.4). The data
 *   protection keychain and `kSecAttrSynchronizable` are avoided: a CLI has no
 *   `keychain-access-groups` entitlement (errSecMissingEntitlement, -34018).
 * - Statics: `kSecClass` and friends are `const CFStringRef` *variables*, and `kCFBooleanTrue` a
 *   `const CFBooleanRef`: Deno's `{ type: "pointer" }` static gives the variable's ADDRESS, so
 *   each is dereferenced once. The dictionary callback structs are passed as that address
 *   (`&kCFTypeDictionaryKeyCallBacks`). Verified for statics on Linux (deno-ffi.md §0.3).
 * - Every query says `kSecUseDataProtectionKeychain: false`. Without the key, SecItem on macOS
 *   targets both keychains (Security sources, `SecItemCategorizeQuery`): each read, update and
 *   delete also goes to the data protection keychain, a round trip whose answer we discard (and
 *   a delete there could remove another program's item of the same name). With `false` only the
 *   file-based login keychain is used, which is where our items live (issue 11 #7).
 * - The four SecItem calls are `nonblocking` (they run on Deno's blocking pool) because they block
 *   while a Keychain unlock or "allow access" dialog waits for the user. Items of the file-based
 *   keychain raise that UI whatever `kSecUseAuthenticationUI` says: the unlock dialog, and "allow
 *   access" for a binary the item's access list does not know yet (a new or ad-hoc-signed
 *   build, so after every upgrade). So where a dialog can be shown at all (a GUI security
 *   session, `SessionGetInfo`'s `sessionHasGraphicAccess`; not over SSH, not with `$CI`) a call
 *   gets human time (`dialogTimeoutMs`, 2 minutes), and after a second says once that it waits
 *   for the dialog; `token` then waits with it, as Claude Code does (it shows "slow helper"
 *   after 10 s and waits minutes). Elsewhere no dialog can appear, and the short store timeout
 *   stays. A call that loses the race still runs, so the CF objects it uses are released only
 *   once it returns; it keeps the process alive until then, so the CLI ends with `Deno.exit`
 *   (deno-ffi.md §0.6, SPEC.md §4).
 * - Both frameworks are opened lazily on the first call, by absolute path (on macOS 11+ they live
 *   in the dyld shared cache, and `dlopen` of the path still works: Bun and go-keyring do it).
 *   Importing this module opens nothing, so it type-checks and imports on Linux and Windows.
 *
 * @module
 */

import { StoreError, type StoreFailure } from "../errors.ts";
import { boundStoreCall, storeTimeoutMs } from "../timeout.ts";

// ---------------------------------------------------------------------------------------------
// Raw symbol tables
// ---------------------------------------------------------------------------------------------

/** Where the frameworks are (the dyld shared cache answers for these paths on macOS 11+). */
export const SECURITY_PATH = "/System/Library/Frameworks/Security.framework/Security";
/** CoreFoundation, for dictionaries, strings, data and CFRelease. */
export const COREFOUNDATION_PATH =
  "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation";

/** CoreFoundation symbols, each with its C declaration (CFBase.h, CFDictionary.h, CFString.h, CFData.h). */
export const coreFoundationSymbols = {
  // void CFRelease(CFTypeRef cf);
  CFRelease: { parameters: ["pointer"], result: "void" },
  // CFTypeID CFGetTypeID(CFTypeRef cf);   CFTypeID = unsigned long
  CFGetTypeID: { parameters: ["pointer"], result: "usize" },
  // CFTypeID CFDataGetTypeID(void);
  CFDataGetTypeID: { parameters: [], result: "usize" },
  // CFDictionaryRef CFDictionaryCreate(CFAllocatorRef allocator, const void **keys,
  //     const void **values, CFIndex numValues, const CFDictionaryKeyCallBacks *keyCallBacks,
  //     const CFDictionaryValueCallBacks *valueCallBacks);
  CFDictionaryCreate: {
    parameters: [
      "pointer", // CFAllocatorRef allocator: NULL = kCFAllocatorDefault
      "buffer", // const void **keys: a BigUint64Array of CFStringRef values
      "buffer", // const void **values: a BigUint64Array of CFTypeRef values
      "isize", // CFIndex numValues (signed long)
      "pointer", // const CFDictionaryKeyCallBacks *: &kCFTypeDictionaryKeyCallBacks (retains)
      "pointer", // const CFDictionaryValueCallBacks *: &kCFTypeDictionaryValueCallBacks
    ],
    result: "pointer", // CFDictionaryRef, +1 (Create rule): CFRelease it; NULL on failure
  },
  // CFStringRef CFStringCreateWithBytes(CFAllocatorRef alloc, const UInt8 *bytes,
  //     CFIndex numBytes, CFStringEncoding encoding, Boolean isExternalRepresentation);
  CFStringCreateWithBytes: {
    parameters: [
      "pointer", // CFAllocatorRef alloc: NULL
      "buffer", // const UInt8 *bytes: UTF-8, no terminator needed (length given)
      "isize", // CFIndex numBytes
      "u32", // CFStringEncoding encoding (UInt32): kCFStringEncodingUTF8
      "u8", // Boolean isExternalRepresentation (unsigned char): false, no BOM handling
    ],
    result: "pointer", // CFStringRef, +1; NULL when the bytes are not valid in the encoding
  },
  // CFDataRef CFDataCreate(CFAllocatorRef allocator, const UInt8 *bytes, CFIndex length);
  CFDataCreate: {
    parameters: [
      "pointer", // CFAllocatorRef allocator: NULL
      "buffer", // const UInt8 *bytes: copied by CoreFoundation
      "isize", // CFIndex length
    ],
    result: "pointer", // CFDataRef, +1
  },
  // CFIndex CFDataGetLength(CFDataRef theData);
  CFDataGetLength: { parameters: ["pointer"], result: "isize" },
  // const UInt8 *CFDataGetBytePtr(CFDataRef theData);   owned by theData
  CFDataGetBytePtr: { parameters: ["pointer"], result: "pointer" },
  // const CFBooleanRef kCFBooleanTrue;   a variable: dereference once
  kCFBooleanTrue: { type: "pointer" },
  // const CFBooleanRef kCFBooleanFalse;   likewise
  kCFBooleanFalse: { type: "pointer" },
  // const CFDictionaryKeyCallBacks kCFTypeDictionaryKeyCallBacks;   a struct: pass its address
  kCFTypeDictionaryKeyCallBacks: { type: "pointer" },
  // const CFDictionaryValueCallBacks kCFTypeDictionaryValueCallBacks;   likewise
  kCFTypeDictionaryValueCallBacks: { type: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Security.framework symbols, each with its C declaration (SecItem.h). */
export const securitySymbols = {
  // OSStatus SecItemAdd(CFDictionaryRef attributes, CFTypeRef *result);
  SecItemAdd: {
    parameters: [
      "pointer", // CFDictionaryRef attributes
      "pointer", // CFTypeRef *result: NULL, nothing asked back
    ],
    result: "i32", // OSStatus (SInt32)
    nonblocking: true, // may wait on a Keychain prompt
  },
  // OSStatus SecItemCopyMatching(CFDictionaryRef query, CFTypeRef *result);
  SecItemCopyMatching: {
    parameters: [
      "pointer", // CFDictionaryRef query
      "buffer", // CFTypeRef *result: out, a CFDataRef (+1) with kSecReturnData + kSecMatchLimitOne
    ],
    result: "i32", // OSStatus
    nonblocking: true,
  },
  // OSStatus SecItemUpdate(CFDictionaryRef query, CFDictionaryRef attributesToUpdate);
  SecItemUpdate: {
    parameters: [
      "pointer", // CFDictionaryRef query: no kSecMatchLimit/kSecReturn* (errSecParam otherwise)
      "pointer", // CFDictionaryRef attributesToUpdate: { kSecValueData: data }
    ],
    result: "i32", // OSStatus
    nonblocking: true,
  },
  // OSStatus SecItemDelete(CFDictionaryRef query);
  SecItemDelete: {
    parameters: ["pointer"], // CFDictionaryRef query
    result: "i32", // OSStatus
    nonblocking: true,
  },
  // const CFStringRef kSecClass;   every one below is a variable: dereference once
  kSecClass: { type: "pointer" },
  // const CFStringRef kSecClassGenericPassword;
  kSecClassGenericPassword: { type: "pointer" },
  // const CFStringRef kSecAttrService;
  kSecAttrService: { type: "pointer" },
  // const CFStringRef kSecAttrAccount;
  kSecAttrAccount: { type: "pointer" },
  // const CFStringRef kSecValueData;
  kSecValueData: { type: "pointer" },
  // const CFStringRef kSecReturnData;
  kSecReturnData: { type: "pointer" },
  // const CFStringRef kSecMatchLimit;
  kSecMatchLimit: { type: "pointer" },
  // const CFStringRef kSecMatchLimitOne;
  kSecMatchLimitOne: { type: "pointer" },
  // const CFStringRef kSecUseDataProtectionKeychain;   macOS 10.15+: absent before, so optional
  kSecUseDataProtectionKeychain: { type: "pointer", optional: true },
  // OSStatus SessionGetInfo(SecuritySessionId session, SecuritySessionId *sessionId,
  //     SessionAttributeBits *attributes);   AuthSession.h; both types are UInt32
  SessionGetInfo: {
    parameters: [
      "u32", // SecuritySessionId session: callerSecuritySession, ((SecuritySessionId)-1)
      "buffer", // SecuritySessionId *sessionId: out, a Uint32Array(1)
      "buffer", // SessionAttributeBits *attributes: out, a Uint32Array(1)
    ],
    result: "i32", // OSStatus: errSessionSuccess (0)
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** AuthSession.h: `callerSecuritySession`, the session of the calling process. */
export const callerSecuritySession = 0xffffffff;
/** AuthSession.h: the session has access to the window server, so dialogs can be shown. */
export const sessionHasGraphicAccess = 0x10;
/** AuthSession.h: the session was established over the network (SSH). */
export const sessionIsRemote = 0x1000;

/** The symbols the wrapper calls: the two frameworks, or fakes with the same signatures. */
export interface SecurityNative {
  cf: Deno.StaticForeignLibraryInterface<typeof coreFoundationSymbols>;
  sec: Deno.StaticForeignLibraryInterface<typeof securitySymbols>;
}

/** CFString.h: `kCFStringEncodingUTF8`. */
export const kCFStringEncodingUTF8 = 0x08000100;

// ---------------------------------------------------------------------------------------------
// OSStatus codes (SecBase.h; errSecMissingEntitlement is from newer SDKs)
// ---------------------------------------------------------------------------------------------

/** No error. */
export const errSecSuccess = 0;
/** The user pressed Deny (or Cancel) in a Keychain dialog. */
export const errSecUserCanceled = -128;
/** No keychain is available. */
export const errSecNotAvailable = -25291;
/** The keychain cannot be modified. */
export const errSecReadOnly = -25292;
/** Authorization/authentication failed: a wrong keychain password, or the access list refused. */
export const errSecAuthFailed = -25293;
/** The keychain does not exist. */
export const errSecNoSuchKeychain = -25294;
/** The keychain is not a valid keychain file. */
export const errSecInvalidKeychain = -25295;
/** The item already exists (SecItemAdd). */
export const errSecDuplicateItem = -25299;
/** The item cannot be found: "no token", not an error. */
export const errSecItemNotFound = -25300;
/** No default keychain. */
export const errSecNoDefaultKeychain = -25307;
/** User interaction is needed but not allowed: a locked keychain over SSH, in launchd, … */
export const errSecInteractionNotAllowed = -25308;
/** User interaction is required, but is currently not allowed. */
export const errSecInteractionRequired = -25315;
/** In dark wake, no UI possible. */
export const errSecInDarkWake = -25320;
/** Unable to decode the provided data. */
export const errSecDecode = -26275;
/** A required entitlement is missing (data-protection keychain or synchronizable items). */
export const errSecMissingEntitlement = -34018;
/** One or more parameters were not valid: a bug in the query. */
export const errSecParam = -50;

const OSSTATUS_NAMES: Readonly<Record<number, string>> = {
  [errSecUserCanceled]: "errSecUserCanceled",
  [errSecNotAvailable]: "errSecNotAvailable",
  [errSecReadOnly]: "errSecReadOnly",
  [errSecAuthFailed]: "errSecAuthFailed",
  [errSecNoSuchKeychain]: "errSecNoSuchKeychain",
  [errSecInvalidKeychain]: "errSecInvalidKeychain",
  [errSecDuplicateItem]: "errSecDuplicateItem",
  [errSecItemNotFound]: "errSecItemNotFound",
  [errSecNoDefaultKeychain]: "errSecNoDefaultKeychain",
  [errSecInteractionNotAllowed]: "errSecInteractionNotAllowed",
  [errSecInteractionRequired]: "errSecInteractionRequired",
  [errSecInDarkWake]: "errSecInDarkWake",
  [errSecDecode]: "errSecDecode",
  [errSecMissingEntitlement]: "errSecMissingEntitlement",
  [errSecParam]: "errSecParam",
  [-108]: "errSecAllocate",
  [-25303]: "errSecNoSuchAttr",
};

/** The symbolic name of an OSStatus, or `OSStatus N` (`security error N` explains any code). */
export function osStatusName(status: number): string {
  return OSSTATUS_NAMES[status] ?? `OSStatus ${status}`;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** A Keychain call failed; keeps the OSStatus. Messages never carry a secret. */
export class KeychainError extends StoreError {
  /** The OSStatus the call returned. */
  readonly status: number;
  constructor(failure: StoreFailure, status: number, message: string) {
    super(failure, message);
    this.status = status;
    this.name = "KeychainError";
  }
}

/** What a Keychain operation was doing, for messages. */
export type KeychainOperation = "read" | "add" | "update" | "delete";

/**
 * Maps an OSStatus to the store failure a user can act on. Pure, so the table is unit-tested.
 * errSecItemNotFound never gets here (it is `null`/`false`), nor errSecDuplicateItem from an add.
 *
 * "Locked" covers the codes whose fix is on the user's side of a Keychain dialog, each with its
 * own explanation: a keychain that is locked where no dialog can be shown (-25308, -25315,
 * -25320), a wrong keychain password or a refusing access list (-25293), a Deny (-128).
 */
export function keychainError(operation: KeychainOperation, status: number): KeychainError {
  const code = `OSStatus ${status} ${osStatusName(status)}`;
  const fail = (failure: StoreFailure, why: string) =>
    new KeychainError(failure, status, `macOS Keychain ${operation} failed (${code}): ${why}`);
  switch (status) {
    case errSecInteractionNotAllowed:
    case errSecInteractionRequired:
      return fail(
        "locked",
        "the Keychain needs a dialog this session cannot show (SSH, launchd, $CI, a " +
          "background session): the login keychain is locked, or the item asks to confirm " +
          "this program (a new or upgraded agent-runner-auth); unlock it here with `security " +
          "unlock-keychain login.keychain`, or run `agent-runner-auth token` once in a " +
          "Terminal on the Mac's desktop and choose Always Allow",
      );
    case errSecInDarkWake:
      return fail("locked", "the Mac is in dark wake and cannot show a Keychain dialog");
    case errSecAuthFailed:
      return fail(
        "locked",
        "the keychain password was wrong, or the item's access list refused this program; " +
          "unlock the login keychain in Keychain Access and allow agent-runner-auth",
      );
    case errSecUserCanceled:
      return fail(
        "locked",
        "access was denied in the Keychain dialog; run it again and choose Allow or Always Allow",
      );
    case errSecNotAvailable:
    case errSecNoSuchKeychain:
    case errSecNoDefaultKeychain:
    case errSecInvalidKeychain:
      return fail(
        "unavailable",
        "there is no usable default keychain for this user; create or repair the login " +
          "keychain in Keychain Access, or choose AGENT_RUNNER_STORE=encrypted-file",
      );
    case errSecMissingEntitlement:
      return fail(
        "unavailable",
        "this binary lacks the entitlement the requested keychain needs",
      );
    case errSecReadOnly:
      return fail("failed", "the default keychain is read-only");
    case errSecDecode:
      return fail("corrupt", "the Keychain could not decode the item");
    default:
      return fail("failed", "see `security error " + status + "` for the system's description");
  }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/** The loaded symbols plus the dereferenced constants a query is built from. */
interface _Loaded {
  native: SecurityNative;
  k: {
    class: Deno.PointerObject;
    genericPassword: Deno.PointerObject;
    service: Deno.PointerObject;
    account: Deno.PointerObject;
    valueData: Deno.PointerObject;
    returnData: Deno.PointerObject;
    matchLimit: Deno.PointerObject;
    matchLimitOne: Deno.PointerObject;
    true: Deno.PointerObject;
    false: Deno.PointerObject;
    /** `null` before macOS 10.15, where the key does not exist (nor the second keychain). */
    useDataProtection: Deno.PointerObject | null;
  };
}

let _real: SecurityNative | undefined;

/**
 * The real frameworks, opened on first use. Needs `--allow-ffi` (unscoped is simplest; the paths
 * are absolute, so a scoped grant is possible but unverified on macOS).
 *
 * @throws {StoreError} "unavailable" off macOS or when a framework cannot be loaded.
 */
export function loadSecurity(): SecurityNative {
  if (_real) return _real;
  if (Deno.build.os !== "darwin") {
    throw new StoreError(
      "unavailable",
      `The macOS Keychain exists only on macOS, not on ${Deno.build.os}`,
    );
  }
  let cf;
  try {
    cf = Deno.dlopen(COREFOUNDATION_PATH, coreFoundationSymbols);
    const sec = Deno.dlopen(SECURITY_PATH, securitySymbols);
    _real = { cf: cf.symbols, sec: sec.symbols };
    return _real;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error; // names the missing --allow-ffi
    cf?.close();
    throw new StoreError(
      "unavailable",
      `The macOS Keychain is unavailable: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

/** Reads a `const X *` variable through the static's address (deno-ffi.md §0.3). */
function _deref(address: Deno.PointerValue, name: string): Deno.PointerObject {
  const value = address === null ? null : new Deno.UnsafePointerView(address).getPointer(0);
  if (value === null) throw new StoreError("unavailable", `The macOS Keychain: ${name} is NULL`);
  return value;
}

function _prepare(native: SecurityNative): _Loaded {
  const { cf, sec } = native;
  return {
    native,
    k: {
      class: _deref(sec.kSecClass, "kSecClass"),
      genericPassword: _deref(sec.kSecClassGenericPassword, "kSecClassGenericPassword"),
      service: _deref(sec.kSecAttrService, "kSecAttrService"),
      account: _deref(sec.kSecAttrAccount, "kSecAttrAccount"),
      valueData: _deref(sec.kSecValueData, "kSecValueData"),
      returnData: _deref(sec.kSecReturnData, "kSecReturnData"),
      matchLimit: _deref(sec.kSecMatchLimit, "kSecMatchLimit"),
      matchLimitOne: _deref(sec.kSecMatchLimitOne, "kSecMatchLimitOne"),
      true: _deref(cf.kCFBooleanTrue, "kCFBooleanTrue"),
      false: _deref(cf.kCFBooleanFalse, "kCFBooleanFalse"),
      useDataProtection: sec.kSecUseDataProtectionKeychain === null
        ? null
        : _deref(sec.kSecUseDataProtectionKeychain, "kSecUseDataProtectionKeychain"),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Safe wrapper
// ---------------------------------------------------------------------------------------------

/** The four operations the store needs on generic passwords; tests may fake this too. */
export interface GenericPasswordApi {
  /** The item's data, or `null` when there is none. */
  find(service: string, account: string): Promise<Uint8Array | null>;
  /** Adds the item; `false` when it already exists (errSecDuplicateItem). */
  add(service: string, account: string, data: Uint8Array): Promise<boolean>;
  /** Replaces the data of the existing item in place; `false` when there is none. */
  update(service: string, account: string, data: Uint8Array): Promise<boolean>;
  /** Deletes the item; `false` when there was none. */
  delete(service: string, account: string): Promise<boolean>;
}

/** Options for {@linkcode Keychain}. */
export interface KeychainOptions {
  /**
   * Bound on each call where no dialog can be shown; default `AGENT_RUNNER_STORE_TIMEOUT_MS`
   * or 3 s, read at call time.
   */
  timeoutMs?: number;
  /** Bound on each call where a Keychain dialog can be shown (module doc); default 2 min. */
  dialogTimeoutMs?: number;
  /** How long a call waits before {@linkcode KeychainOptions.onDialogWait}; default 1 s. */
  dialogNoticeMs?: number;
  /** Said once per Keychain, when a call has waited `dialogNoticeMs` for a dialog. */
  onDialogWait?: () => void;
  /** Whether a dialog can be shown here; default {@linkcode canShowDialogs} (tests force it). */
  dialogs?: () => boolean;
}

/** A Keychain dialog waits for a person: two minutes (issue 11 #7). */
export const DIALOG_TIMEOUT_MS = 120_000;
/** After this long a call says it waits for a dialog. */
export const DIALOG_NOTICE_MS = 1000;

/**
 * Whether a Keychain dialog can be shown to someone now: not with `$CI` set, not in an SSH
 * session (`SSH_CONNECTION`, `SSH_CLIENT`, `SSH_TTY`, or the security session marked remote),
 * and only in a security session with access to the window server. Needs `--allow-env`; an
 * unreadable variable counts as unset.
 */
export function canShowDialogs(
  native: SecurityNative,
  getEnv: (name: string) => string | undefined = _env,
): boolean {
  if (getEnv("CI")) return false;
  if (getEnv("SSH_CONNECTION") || getEnv("SSH_CLIENT") || getEnv("SSH_TTY")) return false;
  const sessionGetInfo = native.sec.SessionGetInfo;
  if (sessionGetInfo === null) return false;
  const id = new Uint32Array(1);
  const attributes = new Uint32Array(1);
  if (sessionGetInfo(callerSecuritySession, id, attributes) !== errSecSuccess) return false;
  return (attributes[0] & sessionHasGraphicAccess) !== 0 &&
    (attributes[0] & sessionIsRemote) === 0;
}

function _env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

type _Pair = [Deno.PointerObject, Deno.PointerObject];

/**
 * Generic-password items in the user's default (login) keychain.
 *
 * Every method needs `--allow-ffi` and `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS`, is bounded
 * by the store timeout, and throws {@linkcode KeychainError} (OSStatus kept) or
 * `StoreError("timeout")`; after a timeout the native call still runs and keeps the process alive
 * until it returns, so the CLI ends through `Deno.exit`. Off macOS the default constructor works
 * and the first call throws `StoreError("unavailable")`.
 */
export class Keychain implements GenericPasswordApi {
  readonly #native: () => SecurityNative;
  readonly #options: KeychainOptions;
  #loaded: _Loaded | undefined;
  #dialogs: boolean | undefined;
  #noticeGiven = false;

  /** @param native the symbols to call; tests pass a fake. Default: the real frameworks, lazily. */
  constructor(native?: SecurityNative, options: KeychainOptions = {}) {
    this.#native = native ? () => native : loadSecurity;
    this.#options = options;
  }

  find(service: string, account: string): Promise<Uint8Array | null> {
    return this.#call("read", service, account, async (lib, base) => {
      const { cf, sec } = lib.native;
      const query = this.#dictionary(lib, [
        ...base,
        [lib.k.returnData, lib.k.true],
        [lib.k.matchLimit, lib.k.matchLimitOne],
      ]);
      const out = new BigUint64Array(1); // CFTypeRef result = NULL
      try {
        const status = await sec.SecItemCopyMatching(query, out);
        const result = Deno.UnsafePointer.create(out[0]);
        try {
          if (status === errSecItemNotFound) return null;
          if (status !== errSecSuccess) throw keychainError("read", status);
          if (result === null || cf.CFGetTypeID(result) !== cf.CFDataGetTypeID()) {
            throw new KeychainError(
              "corrupt",
              status,
              "macOS Keychain read returned something other than the item's data",
            );
          }
          return _copyData(lib.native, result);
        } finally {
          if (result !== null) cf.CFRelease(result);
        }
      } finally {
        cf.CFRelease(query);
      }
    });
  }

  add(service: string, account: string, data: Uint8Array): Promise<boolean> {
    return this.#call(
      "add",
      service,
      account,
      (lib, base) =>
        this.#withData(lib, data, async (value) => {
          const attributes = this.#dictionary(lib, [...base, [lib.k.valueData, value]]);
          try {
            const status = await lib.native.sec.SecItemAdd(attributes, null);
            if (status === errSecDuplicateItem) return false;
            if (status !== errSecSuccess) throw keychainError("add", status);
            return true;
          } finally {
            lib.native.cf.CFRelease(attributes);
          }
        }),
    );
  }

  update(service: string, account: string, data: Uint8Array): Promise<boolean> {
    return this.#call(
      "update",
      service,
      account,
      (lib, base) =>
        this.#withData(lib, data, async (value) => {
          const { cf, sec } = lib.native;
          const query = this.#dictionary(lib, base);
          let changes: Deno.PointerObject | undefined;
          try {
            changes = this.#dictionary(lib, [[lib.k.valueData, value]]);
            const status = await sec.SecItemUpdate(query, changes);
            if (status === errSecItemNotFound) return false;
            if (status !== errSecSuccess) throw keychainError("update", status);
            return true;
          } finally {
            if (changes) cf.CFRelease(changes);
            cf.CFRelease(query);
          }
        }),
    );
  }

  delete(service: string, account: string): Promise<boolean> {
    return this.#call("delete", service, account, async (lib, base) => {
      const query = this.#dictionary(lib, base);
      try {
        const status = await lib.native.sec.SecItemDelete(query);
        if (status === errSecItemNotFound) return false;
        if (status !== errSecSuccess) throw keychainError("delete", status);
        return true;
      } finally {
        lib.native.cf.CFRelease(query);
      }
    });
  }

  #lib(): _Loaded {
    return this.#loaded ??= _prepare(this.#native());
  }

  /**
   * Creates the service and account CFStrings, runs `use` with the base query pairs
   * (class, service, account), and releases the strings once `use` has settled: a call that lost
   * the race against the timer is still using them. The race decides only what the caller sees.
   */
  async #call<T>(
    operation: KeychainOperation,
    service: string,
    account: string,
    use: (lib: _Loaded, base: _Pair[]) => Promise<T>,
  ): Promise<T> {
    const lib = this.#lib();
    const { cf } = lib.native;
    const serviceRef = _cfString(lib.native, service, "service");
    let accountRef: Deno.PointerObject | undefined;
    let pending: Promise<T>;
    try {
      accountRef = _cfString(lib.native, account, "account");
      const base: _Pair[] = [
        [lib.k.class, lib.k.genericPassword],
        [lib.k.service, serviceRef],
        [lib.k.account, accountRef],
      ];
      // The file-based keychain only (module doc). An add carries it too: the item is made there.
      if (lib.k.useDataProtection) base.push([lib.k.useDataProtection, lib.k.false]);
      const strings = [serviceRef, accountRef];
      pending = use(lib, base).finally(() => strings.forEach((s) => cf.CFRelease(s)));
    } catch (error) {
      cf.CFRelease(serviceRef);
      if (accountRef) cf.CFRelease(accountRef);
      throw error;
    }
    this.#dialogs ??= (this.#options.dialogs ?? (() => canShowDialogs(lib.native)))();
    if (!this.#dialogs) {
      const timeoutMs = this.#options.timeoutMs ?? storeTimeoutMs();
      return await boundStoreCall(pending, timeoutMs, () =>
        new StoreError(
          "timeout",
          `macOS Keychain did not answer within ${timeoutMs} ms (${operation}), and this ` +
            `session cannot show a Keychain dialog (SSH, $CI, no desktop); ` +
            `AGENT_RUNNER_STORE_TIMEOUT_MS sets the limit`,
        ));
    }
    // A dialog may be up: human time, and say so once after a second.
    const timeoutMs = this.#options.dialogTimeoutMs ?? DIALOG_TIMEOUT_MS;
    let settled = false;
    if (!this.#noticeGiven) {
      AbortSignal.timeout(this.#options.dialogNoticeMs ?? DIALOG_NOTICE_MS).addEventListener(
        "abort",
        () => {
          if (settled || this.#noticeGiven) return;
          this.#noticeGiven = true;
          this.#options.onDialogWait?.();
        },
        { once: true },
      );
    }
    try {
      return await boundStoreCall(pending, timeoutMs, () =>
        new StoreError(
          "timeout",
          `No answer to the macOS Keychain dialog within ${Math.round(timeoutMs / 1000)} s ` +
            `(${operation}); run the command again and answer it (Allow or Always Allow)`,
        ));
    } finally {
      settled = true;
    }
  }

  /** Wraps `data` in a CFData for `use`, wiping our copy and releasing it after `use` settles. */
  async #withData<T>(
    lib: _Loaded,
    data: Uint8Array,
    use: (value: Deno.PointerObject) => Promise<T>,
  ): Promise<T> {
    const { cf } = lib.native;
    // CFDataCreate copies the bytes; an empty value still gets a non-NULL buffer to point at.
    const bytes = data.length ? data.slice() : new Uint8Array(1);
    const value = cf.CFDataCreate(null, bytes, BigInt(data.length));
    bytes.fill(0);
    if (value === null) {
      throw new StoreError("failed", "macOS Keychain: CFDataCreate failed (out of memory)");
    }
    try {
      return await use(value);
    } finally {
      cf.CFRelease(value);
    }
  }

  /**
   * An immutable CFDictionary with the CFType callbacks, which retain keys and values, so the
   * caller's references stay its own to release.
   */
  #dictionary(lib: _Loaded, pairs: _Pair[]): Deno.PointerObject {
    const { cf } = lib.native;
    const keys = new BigUint64Array(pairs.map(([key]) => Deno.UnsafePointer.value(key)));
    const values = new BigUint64Array(pairs.map(([, value]) => Deno.UnsafePointer.value(value)));
    const dictionary = cf.CFDictionaryCreate(
      null,
      keys,
      values,
      BigInt(pairs.length),
      cf.kCFTypeDictionaryKeyCallBacks,
      cf.kCFTypeDictionaryValueCallBacks,
    );
    if (dictionary === null) {
      throw new StoreError("failed", "macOS Keychain: CFDictionaryCreate failed (out of memory)");
    }
    return dictionary;
  }
}

const encoder = new TextEncoder();

/** A +1 CFString of `text` (UTF-8); the caller releases it. */
function _cfString(native: SecurityNative, text: string, what: string): Deno.PointerObject {
  if (!text.isWellFormed()) throw new TypeError(`A Keychain ${what} name is not well-formed`);
  const bytes = encoder.encode(text);
  const string = native.cf.CFStringCreateWithBytes(
    null,
    bytes.length ? bytes : new Uint8Array(1),
    BigInt(bytes.length),
    kCFStringEncodingUTF8,
    0,
  );
  if (string === null) throw new StoreError("failed", `macOS Keychain: cannot make the ${what}`);
  return string;
}

/** Copies a CFData's bytes into JS memory (the caller releases the CFData). */
function _copyData(native: SecurityNative, data: Deno.PointerObject): Uint8Array {
  const length = Number(native.cf.CFDataGetLength(data));
  if (length === 0) return new Uint8Array();
  const bytes = native.cf.CFDataGetBytePtr(data);
  if (bytes === null) {
    throw new StoreError("failed", "macOS Keychain returned item data without bytes");
  }
  return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(bytes, length)).slice();
}
