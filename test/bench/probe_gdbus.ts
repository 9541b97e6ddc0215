/**
 * What a cached read could cost without libsecret: the same Secret Service lookup done with three
 * plain GDBus calls (`OpenSession("plain")`, `SearchItems`, `GetSecrets`) through libgio FFI, no
 * Diffie-Hellman session and no libsecret proxy objects. Measurement only, for the benchmark's
 * "what would speed it up" line; the product reads through `ffi/linux/libsecret.ts`.
 *
 * Prints one JSON line on stderr: the phase times and the SHA-256 of the value read, so the
 * benchmark can check the probe read the right item (never the value itself).
 *
 * Usage (from the benchmark, with the CLI's flags and the world's env):
 * `deno run … probe_gdbus.ts <account>`
 *
 * @module
 */

const marks: Record<string, number> = { start: performance.now() };
const gio = Deno.dlopen("libgio-2.0.so.0", {
  // GDBusConnection *g_bus_get_sync(GBusType bus_type, GCancellable *c, GError **error);
  g_bus_get_sync: { parameters: ["i32", "pointer", "buffer"], result: "pointer" },
  // GVariant *g_dbus_connection_call_sync(GDBusConnection *c, const gchar *bus_name,
  //   const gchar *object_path, const gchar *interface_name, const gchar *method_name,
  //   GVariant *parameters, const GVariantType *reply_type, GDBusCallFlags flags,
  //   gint timeout_msec, GCancellable *cancellable, GError **error);
  g_dbus_connection_call_sync: {
    parameters: [
      "pointer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "pointer",
      "pointer",
      "i32",
      "i32",
      "pointer",
      "buffer",
    ],
    result: "pointer",
  },
  // GVariant *g_variant_parse(const GVariantType *type, const gchar *text, const gchar *limit,
  //   const gchar **endptr, GError **error);
  g_variant_parse: {
    parameters: ["pointer", "buffer", "pointer", "pointer", "buffer"],
    result: "pointer",
  },
  // GVariant *g_variant_get_child_value(GVariant *value, gsize index_);
  g_variant_get_child_value: { parameters: ["pointer", "usize"], result: "pointer" },
  // gsize g_variant_n_children(GVariant *value);
  g_variant_n_children: { parameters: ["pointer"], result: "usize" },
  // const gchar *g_variant_get_string(GVariant *value, gsize *length);
  g_variant_get_string: { parameters: ["pointer", "pointer"], result: "pointer" },
  // gconstpointer g_variant_get_fixed_array(GVariant *value, gsize *n_elements, gsize size);
  g_variant_get_fixed_array: { parameters: ["pointer", "buffer", "usize"], result: "pointer" },
});
marks.dlopen = performance.now();

const encoder = new TextEncoder();
const c = (s: string) => encoder.encode(s + "\0");
const error = new BigUint64Array(1);
const bus = gio.symbols.g_bus_get_sync(2, /* G_BUS_TYPE_SESSION */ null, error);
if (bus === null) throw new Error("no session bus");
marks.connect = performance.now();

function call(method: string, args: string): Deno.PointerObject {
  const params = gio.symbols.g_variant_parse(null, c(args), null, null, error);
  if (params === null) throw new Error(`cannot build ${method} arguments`);
  const reply = gio.symbols.g_dbus_connection_call_sync(
    bus,
    c("org.freedesktop.secrets"),
    c("/org/freedesktop/secrets"),
    c("org.freedesktop.Secret.Service"),
    c(method),
    params,
    null,
    0,
    3000,
    null,
    error,
  );
  if (reply === null) throw new Error(`${method} failed`);
  return reply;
}

function childString(value: Deno.PointerObject, index: number): string {
  const child = gio.symbols.g_variant_get_child_value(value, BigInt(index))!;
  return Deno.UnsafePointerView.getCString(gio.symbols.g_variant_get_string(child, null)!);
}

const session = childString(call("OpenSession", `("plain", <"">)`), 1);
marks.open_session = performance.now();
const account = Deno.args[0] ?? "agent-runner-access-token";
const found = call(
  "SearchItems",
  `({"service": "agent-runner-auth", "account": "${account}", "xdg:schema": "io.agent-runner.Token"},)`,
);
const unlocked = gio.symbols.g_variant_get_child_value(found, 0n)!;
if (gio.symbols.g_variant_n_children(unlocked) === 0n) throw new Error("no unlocked item");
const item = childString(unlocked, 0);
marks.search = performance.now();
const secrets = call("GetSecrets", `([objectpath '${item}'], objectpath '${session}')`);
// (a{o(oayays)}): the dict, its first entry, the secret struct, its value bytes.
const dict = gio.symbols.g_variant_get_child_value(secrets, 0n)!;
const entry = gio.symbols.g_variant_get_child_value(dict, 0n)!;
const secret = gio.symbols.g_variant_get_child_value(entry, 1n)!;
const bytes = gio.symbols.g_variant_get_child_value(secret, 2n)!;
const length = new BigUint64Array(1);
const data = gio.symbols.g_variant_get_fixed_array(bytes, length, 1n)!;
const value = new TextDecoder().decode(
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, Number(length[0]))),
);
marks.get_secrets = performance.now();
// A digest, never the secret: the benchmark compares it with what `secret-tool lookup` reads.
const digest = await crypto.subtle.digest("SHA-256", encoder.encode(value));
const sha256 = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
console.error(JSON.stringify({ marks, sha256 }));
Deno.exit(0);
