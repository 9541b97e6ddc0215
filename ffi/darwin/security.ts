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
 * - The four SecItem calls are `nonblocking` (they run on Deno's blocking pool) because they block
 *   while a Keychain unlock or "allow access" dialog waits for the user; each is raced against the
 *   store timeout. A call that loses the race still runs, so the CF objects it uses are released
 *   only once it returns; it keeps the process alive until then, so the CLI ends with `Deno.exit`
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
} as const satisfies Deno.ForeignLibraryInterface;

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
        "the login keychain is locked and this session cannot show the unlock dialog (SSH, " +
          "launchd, a background session); unlock it with `security unlock-keychain` in this " +
          "session, or run agent-runner-auth from the Mac's desktop",
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
  /** Bound on each call; default `AGENT_RUNNER_STORE_TIMEOUT_MS` or 3 s, read at call time. */
  timeoutMs?: number;
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
  readonly #timeoutMs: number | undefined;
  #loaded: _Loaded | undefined;

  /** @param native the symbols to call; tests pass a fake. Default: the real frameworks, lazily. */
  constructor(native?: SecurityNative, options: KeychainOptions = {}) {
    this.#native = native ? () => native : loadSecurity;
    this.#timeoutMs = options.timeoutMs;
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
      const strings = [serviceRef, accountRef];
      pending = use(lib, base).finally(() => strings.forEach((s) => cf.CFRelease(s)));
    } catch (error) {
      cf.CFRelease(serviceRef);
      if (accountRef) cf.CFRelease(accountRef);
      throw error;
    }
    const timeoutMs = this.#timeoutMs ?? storeTimeoutMs();
    return await boundStoreCall(pending, timeoutMs, () =>
      new StoreError(
        "timeout",
        `macOS Keychain did not answer within ${timeoutMs} ms (${operation}): a Keychain ` +
          `unlock or access dialog may be waiting for an answer; AGENT_RUNNER_STORE_TIMEOUT_MS ` +
          `sets the limit`,
      ));
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
