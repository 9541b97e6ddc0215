/**
 * One Secret Service lookup spoken directly on the session bus, for the cached `token` path:
 * an encrypted session (`dh-ietf1024-sha256-aes128-cbc-pkcs7`, the one libsecret opens),
 * `SearchItems`, `GetSecret`, pipelined on one connection after one opening round trip.
 *
 * Why it exists: libsecret's first read costs ~12–15 ms in a fresh process (dlopen of GLib,
 * GObject, GIO and libsecret, its proxies, libgcrypt's start-up), most of a cached `token` call
 * (issue 5; SPEC.md §8 asks for 1.5× an empty `deno run`). This read costs about 2 ms and keeps
 * what libsecret gives: the secret crosses the bus encrypted with a key only this process and
 * the keyring share.
 *
 * It is a read accelerator, not a second backend. Writes, deletes, unlocking and prompting stay
 * with libsecret (`ffi/linux/libsecret.ts`), and anything this reader does not handle cleanly
 * answers {@linkcode Fallback} so the caller asks libsecret the same question: no bus socket
 * path (abstract sockets, other transports), no provider running (libsecret may D-Bus-activate
 * one), a locked item (libsecret owns the locked-collection rules), an error reply, a malformed
 * message, a failed decryption, and the 1-in-256 session whose shared secret starts with a zero
 * byte (providers disagree on whether to pad it before HKDF; libsecret's answer is the right one
 * by definition). Only a silent bus is not retried: the caller's timeout then ends the call with
 * the same error libsecret's timeout gives, instead of waiting twice.
 *
 * One round trip comes first, as in libsecret's reads: an awaited `Properties.GetAll` before any
 * call that needs the keyring's record of this client. gnome-keyring (42, at least) makes that
 * record in an idle callback that its message filter queues for each incoming message, and
 * `OpenSession` and `SearchItems` need it; when the daemon's main loop is starved (a loaded
 * 2-core machine), a client whose first keyring call is `OpenSession` can be served before the
 * record exists: `gkd_secret_service_publish_dispatch: assertion 'client' failed`, then a GLib
 * error that aborts the daemon (SIGTRAP) and takes the user's unlocked keyring with it.
 * Measured under two CPU hogs, reading in a loop against a private keyring: pipelined from the
 * first write, the reader crashed the daemon within 22–92 reads (4 of 4 runs); awaited
 * `Peer.Ping`s first (answered off the daemon's main loop) only delayed it (936–1601 reads); an
 * awaited `GetAll` first gave no crash in 2 × 3000 reads, like 1,600 parallel `secret-tool
 * lookup`s (libsecret sends `GetAll`, then `OpenSession`). `early_read.ts` waits out that round
 * trip before the context and config work, so the keyring's Diffie-Hellman still overlaps it.
 * `test/keyring_client_race_test.ts` keeps the loop.
 *
 * Only the keyring is believed (issue 11 #2): every reply must come from the unique name the bus
 * says owns `org.freedesktop.secrets` (`GetNameOwner`, asked in the same write: see
 * `connection.ts`), the session and item paths must lie under `/org/freedesktop/secrets/`, and
 * the item's `Attributes` (asked beside `GetSecret`, no extra round trip) must be the ones
 * searched for. Anything else is a fallback to libsecret, which a peer cannot answer for either.
 *
 * Crypto: Web Crypto for HKDF-SHA256 and AES-128-CBC (the platform primitives; the npm HKDF
 * package the encrypted-file store uses would load Deno's npm layer, ~10 ms, on this path) and
 * BigInt for the modular exponentiation, with a 256-bit private exponent (sized for the
 * group's strength, see {@linkcode PRIVATE_BYTES}), which keeps the two exponentiations near a
 * millisecond.
 *
 * Needs `--allow-read --allow-write` on the bus socket and `--allow-env` for the address.
 *
 * @module
 */

import type { StoreError } from "../../errors.ts";
import { boundStoreCall } from "../../../ffi/timeout.ts";
import { askOwnerCall, BusConnection, type PreparedCall, sessionBusPath } from "./connection.ts";
import {
  type Call,
  DBusWireError,
  decodeUtf8,
  type Message,
  NO_AUTO_START,
  type Variant,
} from "./wire.ts";

/** What the reader found. */
export type SecretRead =
  | { kind: "found"; value: string }
  | { kind: "absent" }
  | Fallback;

/** Ask libsecret instead; `why` is for the `-v` trace. */
export interface Fallback {
  kind: "fallback";
  why: string;
}

const SECRETS = "org.freedesktop.secrets";
const SERVICE_PATH = "/org/freedesktop/secrets";
const SERVICE_IFACE = "org.freedesktop.Secret.Service";
const ITEM_IFACE = "org.freedesktop.Secret.Item";
const PROPERTIES_IFACE = "org.freedesktop.DBus.Properties";
/** Every object of a Secret Service lives under this path (freedesktop Secret Service API). */
const SECRETS_TREE = "/org/freedesktop/secrets/";
const ALGORITHM = "dh-ietf1024-sha256-aes128-cbc-pkcs7";

/** RFC 2409 §6.2, the Second Oakley Group (1024-bit MODP), generator 2. */
export const OAKLEY_1024 = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34" +
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6" +
    "F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);
const GROUP_BYTES = 128;
/**
 * The private exponent's size: 256 bits, not the group's 1024. A Diffie-Hellman exponent needs
 * about twice as many bits as the strength wanted (RFC 3526 §8: 180–240-bit exponents for its
 * 1536-bit group, the smallest it lists), and a 1024-bit MODP group offers about 80 bits
 * (NIST SP 800-57 Part 1, Table 2), so anything from 160 bits up gives all the strength this
 * group has; 256 leaves a margin. The wire format and the peer's view are the same as with a
 * full-size exponent, and each of the two exponentiations costs a quarter of the time (issue 14).
 */
const PRIVATE_BYTES = 32;

/**
 * Reads the secret of the first unlocked item matching `attributes` (which must include
 * `xdg:schema`, as libsecret's lookups match it). The whole read, connection included, is raced
 * against `timeoutMs`; when the timer wins, the connection is closed and `timeoutError()` is
 * thrown. Every other failure is a {@linkcode Fallback}.
 */
export async function readSecret(
  attributes: Record<string, string>,
  options: {
    getEnv: (name: string) => string | undefined;
    timeoutMs: number;
    timeoutError: () => StoreError;
    /**
     * Called exactly once: when the first requests are on the socket, or when the read ends
     * before that. From then on the keyring works without us (see `early_read.ts`).
     */
    onSent?: () => void;
    /** Told the sender of each reply dropped for not coming from the keyring (tests, `-v`). */
    onForeignReply?: (sender: string) => void;
    /**
     * Benchmark only: skip the owner pin and the attributes check, to measure what they cost
     * (`test/bench/probe_read.ts`). Never set otherwise.
     */
    unsafeSkipChecks?: boolean;
  },
): Promise<SecretRead> {
  let sent = false;
  const onSent = () => {
    if (!sent) options.onSent?.();
    sent = true;
  };
  let connecting: Promise<BusConnection> | null = null;
  let timedOut: StoreError | null = null;
  try {
    const path = sessionBusPath(options.getEnv);
    if (path === null) return fallback("no unix:path session bus address");
    const reading = (async () => {
      connecting = BusConnection.open(path);
      const bus = await connecting;
      if (timedOut) throw timedOut; // connected after the deadline: go no further
      bus.onForeign = options.onForeignReply ?? null;
      return await lookup(bus, attributes, onSent, !options.unsafeSkipChecks);
    })();
    return await boundStoreCall(reading, options.timeoutMs, () => {
      timedOut = options.timeoutError();
      return timedOut;
    });
  } catch (error) {
    if (error === timedOut) throw error;
    return fallback(error instanceof Error ? error.message : String(error));
  } finally {
    // Closed however it ended, even when the connection only comes up after the deadline.
    (connecting as Promise<BusConnection> | null)?.then((bus) => bus.close(), () => {});
    onSent(); // a read that ended early: nothing left to wait for
  }
}

/**
 * The calls every read opens with, marshalled ahead of time (`connection_test.ts` checks them
 * against `encodeCall`; see `HELLO` there): after `Hello` (serial 1), the bus is asked who owns
 * `org.freedesktop.secrets` (serial 2) and the keyring for its properties (serial 3).
 */
export const ASK_OWNER_CALL: Call = askOwnerCall(SECRETS);
export const GREETING_CALL: Call = {
  destination: SECRETS,
  path: SERVICE_PATH,
  interface: PROPERTIES_IFACE,
  member: "GetAll",
  signature: "s",
  args: [SERVICE_IFACE],
  flags: NO_AUTO_START,
};
export const ASK_OWNER: PreparedCall = {
  serial: 2,
  destination: ASK_OWNER_CALL.destination,
  bytes: Uint8Array.fromHex(
    "6c0100011c000000020000007f00000001016f00150000002f6f72672f667265656465736b746f702f4442757300" +
      "000002017300140000006f72672e667265656465736b746f702e4442757300000000030173000c0000004765744e" +
      "616d654f776e65720000000006017300140000006f72672e667265656465736b746f702e44427573000000000801" +
      "670001730000170000006f72672e667265656465736b746f702e7365637265747300",
  ),
};
export const GREETING: PreparedCall = {
  serial: 3,
  destination: SECRETS,
  bytes: Uint8Array.fromHex(
    "6c01020123000000030000008700000001016f00180000002f6f72672f667265656465736b746f702f7365637265" +
      "74730000000000000000020173001f0000006f72672e667265656465736b746f702e444275732e50726f70657274" +
      "696573000301730006000000476574416c6c000006017300170000006f72672e667265656465736b746f702e7365" +
      "63726574730008016700017300001e0000006f72672e667265656465736b746f702e5365637265742e5365727669" +
      "636500",
  ),
};

async function lookup(
  bus: BusConnection,
  attributes: Record<string, string>,
  onSent: (() => void) | undefined,
  checks: boolean,
): Promise<SecretRead> {
  const describe = (
    path: string,
    iface: string,
    member: string,
    signature = "",
    args: unknown[] = [],
  ): Call => ({
    destination: SECRETS,
    path,
    interface: iface,
    member,
    signature,
    args,
    // Never start a provider from here: libsecret does that, with its own rules.
    flags: NO_AUTO_START,
  });
  const call = (...a: Parameters<typeof describe>) => bus.call(describe(...a));
  // First in the write: the bus names the keyring before any of its replies can be believed.
  if (checks) bus.pinOwner(SECRETS, ASK_OWNER).catch(() => {}); // on failure, calls below fail
  // Then one call the keyring answers from its main loop without knowing us, awaited before
  // any call that needs its record of this client (module doc: a daemon crash). Our key pair
  // (~1.5 ms of BigInt work) and the next two calls are made while that round trip is on its
  // way, not after it: once the answer is in, only the write is left.
  // Its answer only has to arrive: its body (the service's properties) is not decoded.
  const greeting = checks
    ? bus.send(GREETING, { body: false })
    : bus.call(GREETING_CALL, { body: false });
  greeting.catch(() => {}); // awaited below
  await bus.written();
  const keys = generateKeyPair();
  const openSession = bus.prepare(describe(SERVICE_PATH, SERVICE_IFACE, "OpenSession", "sv", [
    ALGORITHM,
    { signature: "ay", value: keys.publicKey } satisfies Variant,
  ]));
  const searchItems = bus.prepare(
    describe(SERVICE_PATH, SERVICE_IFACE, "SearchItems", "a{ss}", [Object.entries(attributes)]),
  );
  expect(await greeting, "a{sv}");
  const opening = bus.send(openSession);
  const searching = bus.send(searchItems);
  searching.catch(() => {}); // awaited below; an early rejection is not unhandled
  if (onSent) void bus.written().then(onSent);

  const [output, session] = expect(await opening, "vo") as [Variant, string];
  if (output.signature !== "ay") return fallback(`OpenSession output of type ${output.signature}`);
  if (!session.startsWith(SECRETS_TREE)) return fallback("a session outside the keyring's tree");
  if (!inGroup(output.value as Uint8Array)) {
    return fallback("the keyring's public value is invalid");
  }
  const [unlocked, locked] = expect(await searching, "aoao") as [string[], string[]];
  if (unlocked.length === 0) {
    return locked.length > 0 ? fallback("the item is locked") : { kind: "absent" };
  }
  // Ask for the secret, let the write go out (the connection flushes in a microtask), and
  // derive the key while the answer is on its way: the two overlap instead of adding up.
  const item = unlocked[0];
  if (!item.startsWith(SECRETS_TREE)) return fallback("an item outside the keyring's tree");
  const getting = call(item, ITEM_IFACE, "GetSecret", "o", [session]);
  getting.catch(() => {}); // awaited below
  const describing = checks
    ? call(item, PROPERTIES_IFACE, "Get", "ss", [ITEM_IFACE, "Attributes"])
    : null;
  describing?.catch(() => {}); // awaited below
  await null;
  const aesKey = await deriveSessionKey(keys, output.value as Uint8Array);
  if (aesKey === null) return fallback("shared secret with a leading zero byte");
  const [secret] = expect(await getting, "(oayays)") as [
    [string, Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>, string],
  ];
  const [secretSession, iv, ciphertext] = secret;
  if (secretSession !== session) return fallback("secret from another session");
  if (describing) {
    const [described] = expect(await describing, "v") as [Variant];
    if (described.signature !== "a{ss}") return fallback("item attributes of another type");
    const held = new Map(described.value as [string, string][]);
    for (const [name, value] of Object.entries(attributes)) {
      if (held.get(name) !== value) return fallback("the item's attributes are not the ones asked");
    }
  }
  if (iv.length !== 16) return fallback("bad IV length");
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt({ name: "AES-CBC", iv }, aesKey, ciphertext);
  } catch {
    return fallback("the secret did not decrypt");
  }
  try {
    return { kind: "found", value: decodeUtf8(new Uint8Array(plain)) };
  } catch {
    return fallback("the secret is not UTF-8");
  }
}

function expect(message: Message, signature: string): unknown[] {
  if ((message.signature ?? "") !== signature) {
    throw new DBusWireError(`reply of type "${message.signature ?? ""}", not "${signature}"`);
  }
  return message.body;
}

function fallback(why: string): Fallback {
  return { kind: "fallback", why };
}

// ---- Diffie-Hellman ------------------------------------------------------------------------

/** A client key pair: the private exponent and the public value, padded to the group size. */
export interface KeyPair {
  privateKey: bigint;
  publicKey: Uint8Array;
}

/**
 * A fresh key pair: a random nonzero exponent of {@linkcode PRIVATE_BYTES} bytes from
 * `crypto.getRandomValues` (`privateKey` for tests: a fixed exponent), and 2^x mod p.
 */
export function generateKeyPair(privateKey?: bigint): KeyPair {
  let x = privateKey ?? 0n;
  while (x === 0n) x = bytesToBigInt(crypto.getRandomValues(new Uint8Array(PRIVATE_BYTES)));
  // Padded to 128 bytes: KWallet rejects a shorter public key (docker/secrets-engine#649).
  return { privateKey: x, publicKey: bigIntToBytes(modPow(2n, x, OAKLEY_1024), GROUP_BYTES)! };
}

/**
 * The session's AES-128 key: HKDF-SHA256 (no salt, no info) of the 128-byte shared secret, as
 * libsecret and gnome-keyring derive it. `null` when the peer's value is out of range or the
 * shared secret's first byte is zero (see the module doc).
 */
export async function deriveSessionKey(
  keys: KeyPair,
  peerPublic: Uint8Array,
): Promise<CryptoKey | null> {
  if (!inGroup(peerPublic)) return null;
  const peer = bytesToBigInt(peerPublic);
  const shared = bigIntToBytes(modPow(peer, keys.privateKey, OAKLEY_1024), GROUP_BYTES)!;
  if (shared[0] === 0) return null;
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  // One derivation straight into the AES key (not derived bits, then an import): one Web
  // Crypto call fewer, each ~0.3 ms cold.
  return await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new Uint8Array(0) },
    ikm,
    { name: "AES-CBC", length: 128 },
    false,
    ["decrypt", "encrypt"],
  );
}

/** Whether a peer's public value is in range: 1 < y < p − 1 (rules out the trivial keys). */
export function inGroup(publicValue: Uint8Array): boolean {
  const y = bytesToBigInt(publicValue);
  return y > 1n && y < OAKLEY_1024 - 1n;
}

/**
 * Left-to-right square-and-multiply. The exponent's bits are read from its binary string, so
 * each step costs only the BigInt square and reduction it needs (no shift, mask or BigInt
 * counter per bit), and with base 2 (the key pair) the multiply is a doubling: a shift and at
 * most one subtraction instead of a product and a division. Cold, once per `token`, this is
 * most of the key pair's cost (issue 14: test/bench/dh_cost.ts measures it).
 */
export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  base %= modulus;
  if (exponent === 0n) return 1n % modulus;
  const bits = exponent.toString(2);
  const double = base === 2n && modulus > 2n;
  let result = base; // the leading 1 bit
  for (let i = 1; i < bits.length; i++) {
    result = (result * result) % modulus;
    if (bits.charCodeAt(i) !== 49) continue; // "0"
    if (double) {
      result <<= 1n;
      if (result >= modulus) result -= modulus;
    } else {
      result = (result * base) % modulus;
    }
  }
  return result;
}

/**
 * Big-endian unsigned bytes → bigint. Through `Uint8Array.prototype.toHex` (V8's builtin): a JS
 * loop over 128 bytes costs ~0.3 ms cold, in a process that runs it once, and the cached read
 * converts four values (issue 14).
 */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  return BigInt("0x0" + bytes.toHex());
}

/** bigint → big-endian unsigned bytes, left-padded to `size`; `null` when it does not fit. */
export function bigIntToBytes(value: bigint, size: number): Uint8Array<ArrayBuffer> | null {
  const hex = value.toString(16);
  if (hex.length > size * 2) return null;
  return Uint8Array.fromHex(hex.padStart(size * 2, "0"));
}
