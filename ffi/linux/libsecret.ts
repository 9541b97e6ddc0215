/**
 * libsecret (the freedesktop Secret Service client library) through Deno FFI: the raw symbol
 * tables, then a safe wrapper of three calls that frees native memory and turns every `GError`
 * into a {@linkcode StoreError}. Notes and measurements: `shared/research/deno-ffi.md` §0 and §2.
 *
 * Why it looks the way it does:
 * - Only the non-variadic `secret_password_{storev,lookupv,clearv}_sync` are bound: Deno FFI has
 *   no variadic calling convention (deno-ffi.md §0.9), so the attributes go in a `GHashTable`
 *   built with glib, and the `SecretSchema` is laid out by hand in a 592-byte buffer (§2.4).
 * - The calls are `nonblocking` (they run on Deno's blocking thread pool) because libsecret
 *   documents them as "may block indefinitely" (an unlock prompt, a hung service), and each one
 *   is raced against a timer ({@linkcode withStoreTimeout}).
 * - Both libraries are opened by soname, lazily, on the first call: `dlopen` costs ~4 ms and the
 *   cached `token` path of other backends must not pay it. Loading by soname needs an unscoped
 *   `--allow-ffi` (a scoped one turns the soname into a cwd-relative path, denoland/deno#29246).
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import { boundStoreCall, secretServiceTimeout, storeTimeoutMs } from "../timeout.ts";

// ---------------------------------------------------------------------------------------------
// Raw symbol tables (after denodrivers/sqlite3's `src/ffi.ts`): the C declaration of every symbol.
// ---------------------------------------------------------------------------------------------

/** The libsecret soname (Debian/Ubuntu package `libsecret-1-0`, Fedora/Arch `libsecret`). */
const LIBSECRET = "libsecret-1.so.0";
/** The glib soname; every desktop Linux has it, libsecret depends on it. */
const LIBGLIB = "libglib-2.0.so.0";

const secretSymbols = {
  // gboolean secret_password_storev_sync(const SecretSchema *schema, GHashTable *attributes,
  //     const gchar *collection, const gchar *label, const gchar *password,
  //     GCancellable *cancellable, GError **error);
  secret_password_storev_sync: {
    parameters: [
      "buffer", // const SecretSchema *schema
      "pointer", // GHashTable *attributes
      "buffer", // const gchar *collection: NULL means the default collection
      "buffer", // const gchar *label
      "buffer", // const gchar *password
      "pointer", // GCancellable *cancellable: NULL
      "buffer", // GError **error
    ],
    result: "i32", // gboolean: TRUE when stored (an existing matching item is updated in place)
    nonblocking: true,
  },
  // gchar *secret_password_lookupv_sync(const SecretSchema *schema, GHashTable *attributes,
  //     GCancellable *cancellable, GError **error);
  secret_password_lookupv_sync: {
    parameters: [
      "buffer", // const SecretSchema *schema
      "pointer", // GHashTable *attributes
      "pointer", // GCancellable *cancellable: NULL
      "buffer", // GError **error
    ],
    result: "pointer", // gchar *: NULL when not found; free with secret_password_free
    nonblocking: true,
  },
  // gboolean secret_password_clearv_sync(const SecretSchema *schema, GHashTable *attributes,
  //     GCancellable *cancellable, GError **error);
  secret_password_clearv_sync: {
    parameters: [
      "buffer", // const SecretSchema *schema
      "pointer", // GHashTable *attributes
      "pointer", // GCancellable *cancellable: NULL
      "buffer", // GError **error
    ],
    result: "i32", // gboolean: FALSE when nothing matched
    nonblocking: true,
  },
  // void secret_password_free(gchar *password);  wipes the memory, then frees it
  secret_password_free: {
    parameters: ["pointer"], // gchar *password
    result: "void",
  },
} as const satisfies Deno.ForeignLibraryInterface;

const glibSymbols = {
  // GHashTable *g_hash_table_new(GHashFunc hash_func, GEqualFunc key_equal_func);
  g_hash_table_new: {
    parameters: [
      "pointer", // GHashFunc hash_func: g_str_hash
      "pointer", // GEqualFunc key_equal_func: g_str_equal
    ],
    result: "pointer", // GHashTable *
  },
  // gboolean g_hash_table_insert(GHashTable *hash_table, gpointer key, gpointer value);
  g_hash_table_insert: {
    parameters: [
      "pointer", // GHashTable *hash_table
      "buffer", // gpointer key: a NUL-terminated string, not copied
      "buffer", // gpointer value: a NUL-terminated string, not copied
    ],
    result: "i32", // gboolean: TRUE when the key was new
  },
  // void g_hash_table_unref(GHashTable *hash_table);
  g_hash_table_unref: {
    parameters: ["pointer"], // GHashTable *hash_table
    result: "void",
  },
  // void g_error_free(GError *error);
  g_error_free: {
    parameters: ["pointer"], // GError *error
    result: "void",
  },
  // const gchar *g_quark_to_string(GQuark quark);
  g_quark_to_string: {
    parameters: ["u32"], // GQuark quark (guint32)
    result: "pointer", // const gchar *: owned by glib, never freed
  },
  // guint g_str_hash(gconstpointer v);  a static: Deno gives its address, the function pointer
  g_str_hash: { type: "pointer" },
  // gboolean g_str_equal(gconstpointer v1, gconstpointer v2);  likewise the function pointer
  g_str_equal: { type: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The two libraries plus the schema, which has to outlive every call that points at it. */
interface Libsecret {
  secret: Deno.DynamicLibrary<typeof secretSymbols>["symbols"];
  glib: Deno.DynamicLibrary<typeof glibSymbols>["symbols"];
  schema: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/**
 * The schema name, matched on every lookup (flags NONE). Spelled here because `ffi/` imports
 * nothing from `src/`; `SECRET_SCHEMA_NAME` in `src/store/store.ts` is the same text (checked
 * by test/import_graph_test.ts).
 */
export const SCHEMA_NAME = "io.agent-runner.Token";

/** The schema's attributes, all of type STRING. The wrapper rejects any other attribute name. */
export const SCHEMA_ATTRIBUTES = ["service", "account"] as const;

/** An attribute set matching {@linkcode SCHEMA_ATTRIBUTES}. */
export type SecretAttributes = Record<(typeof SCHEMA_ATTRIBUTES)[number], string>;

const SCHEMA_SIZE = 592; // sizeof(SecretSchema) on LP64 (x86_64, aarch64)
const SCHEMA_ATTRIBUTE_OFFSET = 16; // SecretSchemaAttribute attributes[32] starts after name + flags
const SCHEMA_ATTRIBUTE_SIZE = 16; // { const gchar *name; SecretSchemaAttributeType type; } + pad
const SECRET_SCHEMA_NONE = 0;
const SECRET_SCHEMA_ATTRIBUTE_STRING = 0;

/** C strings the schema points at; module-level so they live as long as the schema buffer. */
const schemaStrings: Uint8Array[] = [];

/**
 * Lays out a `SecretSchema` (libsecret/secret-schema.h) in a zeroed buffer: the zeroes are the
 * NULL name that ends the attribute list and the reserved fields.
 */
function buildSchema(): Uint8Array {
  const schema = new Uint8Array(SCHEMA_SIZE);
  const view = new DataView(schema.buffer);
  const name = cString(SCHEMA_NAME);
  schemaStrings.push(name);
  view.setBigUint64(0, addressOf(name), true); // const gchar *name
  view.setInt32(8, SECRET_SCHEMA_NONE, true); // SecretSchemaFlags flags
  SCHEMA_ATTRIBUTES.forEach((attribute, i) => {
    const offset = SCHEMA_ATTRIBUTE_OFFSET + i * SCHEMA_ATTRIBUTE_SIZE;
    const attributeName = cString(attribute);
    schemaStrings.push(attributeName);
    view.setBigUint64(offset, addressOf(attributeName), true);
    view.setInt32(offset + 8, SECRET_SCHEMA_ATTRIBUTE_STRING, true);
  });
  return schema;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

let loaded: Libsecret | undefined;

/** Opens both libraries once; a missing one becomes `StoreError("unavailable")`. */
function load(): Libsecret {
  if (loaded) return loaded;
  const glib = open(
    LIBGLIB,
    glibSymbols,
    "glib (Debian/Ubuntu: libglib2.0-0; Fedora, Arch: glib2)",
  );
  let secret;
  try {
    secret = open(
      LIBSECRET,
      secretSymbols,
      "libsecret (Debian/Ubuntu: libsecret-1-0; Fedora, Arch: libsecret)",
    );
  } catch (error) {
    glib.close();
    throw error;
  }
  loaded = { secret: secret.symbols, glib: glib.symbols, schema: buildSchema() };
  return loaded;
}

function open<S extends Deno.ForeignLibraryInterface>(
  soname: string,
  symbols: S,
  install: string,
): Deno.DynamicLibrary<S> {
  try {
    return Deno.dlopen(soname, symbols);
  } catch (error) {
    // A permission error is a programming error (the binary is compiled with --allow-ffi): keep it.
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw error;
    }
    throw new StoreError(
      "unavailable",
      `Secret Service store unavailable: ${soname} could not be loaded; install ${install}`,
      { cause: error },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Safe wrapper
// ---------------------------------------------------------------------------------------------

// The bound on every call is shared with the other stores (ffi/timeout.ts).
export { DEFAULT_STORE_TIMEOUT_MS, secretServiceTimeout, storeTimeoutMs } from "../timeout.ts";

/**
 * Races `pending` against a timer and throws `StoreError("timeout")` if the timer wins. The timer
 * is cleared when the call wins, so nothing is left scheduled.
 *
 * A losing `nonblocking` FFI call cannot be cancelled and keeps the Deno process alive until it
 * returns (measured: deno-ffi.md §0.6). The CLI always ends with `Deno.exit` in `src/main.ts`,
 * so callers just let the error propagate. A late rejection of `pending` is absorbed.
 *
 * Needs `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS` when `timeoutMs` is omitted (without it the
 * default applies). Exported so tests can race an injected slow call.
 */
export function withStoreTimeout<T>(
  pending: Promise<T>,
  what: string,
  timeoutMs: number = storeTimeoutMs(),
): Promise<T> {
  return boundStoreCall(pending, timeoutMs, () => secretServiceTimeout(timeoutMs, what));
}

/**
 * Creates or updates (in place, same attributes) the item with these attributes in the default
 * collection.
 *
 * Needs `--allow-ffi` (unscoped) and `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS`. Throws
 * `StoreError`: "unavailable" (no libsecret, no D-Bus, no Secret Service), "locked", "timeout"
 * (the pending native call then keeps the process alive until it returns: end with `Deno.exit`),
 * "failed". Throws `TypeError` for a value that C cannot carry unchanged (NUL, lone surrogate).
 */
export async function storePassword(
  attributes: SecretAttributes,
  label: string,
  value: string,
): Promise<void> {
  checkText(label, "label");
  checkText(value, "value");
  const lib = load();
  const call = withAttributeTable(lib, attributes, async (table, error) => {
    const labelC = cString(label);
    const valueC = cString(value);
    try {
      const ok = await lib.secret.secret_password_storev_sync(
        lib.schema,
        table,
        null,
        labelC,
        valueC,
        null,
        error,
      );
      const failure = takeError(lib, error);
      if (failure) throw toStoreError("store", failure);
      if (!ok) throw new StoreError("failed", "Secret Service store failed with no error");
    } finally {
      valueC.fill(0); // our copy of the secret; also keeps both buffers alive until here
      labelC.fill(0);
    }
  });
  return await withStoreTimeout(call, "store");
}

/**
 * The value of the item with exactly these attributes (plus our schema), or `null`.
 *
 * `null` with no error also comes back for a *locked* collection (SPEC.md §4): a caller that
 * finds nothing must check the store is usable before concluding "no token".
 *
 * Needs `--allow-ffi` (unscoped) and `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS`. Throws
 * `StoreError` as {@linkcode storePassword}.
 */
export async function lookupPassword(attributes: SecretAttributes): Promise<string | null> {
  const lib = load();
  const call = withAttributeTable(lib, attributes, async (table, error) => {
    const found = await lib.secret.secret_password_lookupv_sync(lib.schema, table, null, error);
    const failure = takeError(lib, error);
    if (found === null) {
      if (failure) throw toStoreError("lookup", failure);
      return null;
    }
    try {
      if (failure) throw toStoreError("lookup", failure);
      return Deno.UnsafePointerView.getCString(found);
    } finally {
      lib.secret.secret_password_free(found);
    }
  });
  return await withStoreTimeout(call, "lookup");
}

/**
 * Deletes the items with these attributes; `false` when there was none.
 *
 * Needs `--allow-ffi` (unscoped) and `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS`. Throws
 * `StoreError` as {@linkcode storePassword}.
 */
export async function clearPassword(attributes: SecretAttributes): Promise<boolean> {
  const lib = load();
  const call = withAttributeTable(lib, attributes, async (table, error) => {
    const cleared = await lib.secret.secret_password_clearv_sync(lib.schema, table, null, error);
    const failure = takeError(lib, error);
    if (failure) throw toStoreError("delete", failure);
    return cleared !== 0;
  });
  return await withStoreTimeout(call, "delete");
}

/**
 * Builds the attribute `GHashTable`, runs `use`, and frees the table only once `use` has settled:
 * the table points into JS buffers (no copies, no destroy functions), and a call that lost the
 * race against the timer is still running in C.
 */
async function withAttributeTable<T>(
  lib: Libsecret,
  attributes: SecretAttributes,
  use: (table: Deno.PointerObject, error: BigUint64Array) => Promise<T>,
): Promise<T> {
  const strings: Uint8Array[] = [];
  const names = Object.keys(attributes).sort();
  if (names.join() !== [...SCHEMA_ATTRIBUTES].sort().join()) {
    throw new TypeError(`Secret attributes must be exactly ${SCHEMA_ATTRIBUTES.join(", ")}`);
  }
  const table = lib.glib.g_hash_table_new(lib.glib.g_str_hash, lib.glib.g_str_equal);
  if (table === null) throw new StoreError("failed", "Secret Service call failed: out of memory");
  try {
    for (const name of SCHEMA_ATTRIBUTES) {
      checkText(attributes[name], `attribute ${name}`);
      const key = cString(name);
      const value = cString(attributes[name]);
      strings.push(key, value);
      lib.glib.g_hash_table_insert(table, key, value);
    }
    return await use(table, new BigUint64Array(1)); // GError *error = NULL
  } finally {
    lib.glib.g_hash_table_unref(table);
    strings.length = 0;
  }
}

/** What a `GError` said, copied out of native memory. */
interface GErrorInfo {
  domain: string;
  code: number;
  message: string;
}

/** Reads and frees a `GError` (`{ GQuark domain @0; gint code @4; gchar *message @8 }`). */
function takeError(lib: Libsecret, slot: BigUint64Array): GErrorInfo | null {
  const pointer = Deno.UnsafePointer.create(slot[0]);
  if (pointer === null) return null;
  slot[0] = 0n;
  try {
    const view = new Deno.UnsafePointerView(pointer);
    const quark = lib.glib.g_quark_to_string(view.getUint32(0));
    const message = view.getPointer(8);
    return {
      domain: quark === null ? "unknown-quark" : Deno.UnsafePointerView.getCString(quark),
      code: view.getInt32(4),
      message: message === null ? "" : Deno.UnsafePointerView.getCString(message),
    };
  } finally {
    lib.glib.g_error_free(pointer);
  }
}

const HOW_TO_GET_ONE = "log in to a desktop session that runs gnome-keyring or KWallet, or run " +
  "gnome-keyring-daemon under dbus-run-session, or choose another store (AGENT_RUNNER_STORE=pass)";

/**
 * Maps a `GError` to the store failure a user can act on. The texts matched are the ones measured
 * in deno-ffi.md §2.6 (GDBus and gnome-keyring); the domain and code are kept in the message so an
 * unknown case can still be looked up. Service messages never contain the secret.
 */
function toStoreError(op: string, { domain, code, message }: GErrorInfo): StoreError {
  const detail = `${domain}#${code}: ${message.replace(/\s+/g, " ").trim()}`;
  if (/autolaunch D-Bus|dbus-launch|Could not connect|Cannot spawn a message bus/i.test(message)) {
    return new StoreError(
      "unavailable",
      `No Secret Service is running: there is no D-Bus session bus (${detail}); ${HOW_TO_GET_ONE}`,
    );
  }
  if (/was not provided by any \.service files|org\.freedesktop\.secrets/i.test(message)) {
    return new StoreError(
      "unavailable",
      `No Secret Service is running: nothing provides org.freedesktop.secrets on the D-Bus ` +
        `session bus (${detail}); ${HOW_TO_GET_ONE}`,
    );
  }
  if (/locked collection|locked object|is locked|\/collection\/login/i.test(message)) {
    return new StoreError(
      "locked",
      `The Secret Service keyring is locked or was never created (${detail}); unlock the login ` +
        `keyring in your desktop session (Seahorse, or gnome-keyring-daemon --unlock with the ` +
        `password on stdin)`,
    );
  }
  // G_IO_ERROR_TIMED_OUT (24) and G_DBUS_ERROR_NO_REPLY (4): GDBus gave up on its own 25 s timer.
  if (
    (domain === "g-io-error-quark" && code === 24) ||
    (domain === "g-dbus-error-quark" && code === 4)
  ) {
    return new StoreError("timeout", `Secret Service did not answer (${op}): ${detail}`);
  }
  return new StoreError("failed", `Secret Service ${op} failed: ${detail}`);
}

// ---------------------------------------------------------------------------------------------
// C strings
// ---------------------------------------------------------------------------------------------

const encoder = new TextEncoder();

/** A NUL-terminated UTF-8 copy; the caller keeps it referenced for as long as C may read it. */
function cString(text: string): Uint8Array {
  return encoder.encode(text + "\0");
}

function addressOf(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * A string C would not carry unchanged: a NUL ends it early and a lone surrogate becomes U+FFFD.
 * Stored values must come back byte for byte (SPEC.md §4: never cut), so refuse them up front.
 */
function checkText(text: string, what: string): void {
  if (text.includes("\0")) throw new TypeError(`Secret Service ${what} cannot contain NUL`);
  if (!text.isWellFormed()) {
    throw new TypeError(`Secret Service ${what} is not well-formed Unicode (lone surrogate)`);
  }
}
