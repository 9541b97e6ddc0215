/**
 * A minimal D-Bus client connection over a Unix socket: the session bus address, the SASL
 * `EXTERNAL` handshake, and pipelined method calls matched to their replies by serial.
 *
 * Pipelined on purpose: the handshake, `Hello` and every call made in the same tick leave in one
 * write (checked with strace), the way sd-bus does it, so a whole Secret Service read costs three
 * round trips on the socket (the first, an awaited `GetAll`, keeps gnome-keyring alive: see
 * `secret_read.ts`) instead of libsecret's dlopen of GLib plus a dozen (SPEC.md §8).
 *
 * The handshake sends `AUTH EXTERNAL` without an identity and answers the server's empty `DATA`
 * challenge with an empty `DATA`: the bus then takes the uid from the socket's peer credentials,
 * so no `--allow-sys=uid` is needed to spell it out.
 *
 * Replies are matched by serial *and sender* (issue 11 #2): serials are predictable (Hello is 1,
 * the next call 2, …), and any client on the session bus can send a method return to any other,
 * so matching by serial alone let a same-user peer answer `SearchItems` in the keyring's place
 * (reproduced: the keyring then decrypted an item of the peer's choosing for our session). The
 * bus daemon stamps every message with the unique name of the connection that really sent it,
 * and its own with `org.freedesktop.DBus`; so a call to the bus accepts only the bus's answer,
 * and after {@linkcode BusConnection.pinOwner} a call to a pinned name accepts only the answer of
 * the unique name the bus says owns it (errors may come from the bus too: it reports an absent
 * or vanished peer). Anything else is dropped, as if never received.
 *
 * No imports beyond `wire.ts`: this is on the cached `token` path.
 *
 * @module
 */

import {
  type Call,
  DBusWireError,
  decodeMessage,
  decodeUtf8,
  encodeCall,
  ERROR,
  type Message,
  messageLength,
  METHOD_CALL,
  METHOD_RETURN,
  SIGNAL,
} from "./wire.ts";

/** The peer answered a call with an error message. */
export class DBusCallError extends Error {
  override name = "DBusCallError";
  constructor(readonly errorName: string, detail: string) {
    super(`${errorName}: ${detail}`);
  }
}

/** The connection ended (closed, reset, refused by the handshake) before a reply came. */
export class DBusClosedError extends Error {
  override name = "DBusClosedError";
}

/**
 * The socket path of the session bus: the first `unix:path=` entry of
 * `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus` when the variable is unset (GLib's and
 * sd-bus's default). `null` when the address names only transports this client does not speak
 * (`unix:abstract=`, `tcp:`, `launchd:`, …): the caller then uses libsecret.
 */
export function sessionBusPath(getEnv: (name: string) => string | undefined): string | null {
  const address = getEnv("DBUS_SESSION_BUS_ADDRESS");
  if (address === undefined || address === "") {
    const runtime = getEnv("XDG_RUNTIME_DIR");
    return runtime ? `${runtime}/bus` : null;
  }
  for (const entry of address.split(";")) {
    const colon = entry.indexOf(":");
    if (entry.slice(0, colon) !== "unix") continue;
    for (const pair of entry.slice(colon + 1).split(",")) {
      const eq = pair.indexOf("=");
      if (pair.slice(0, eq) !== "path") continue;
      try {
        return decodeURIComponent(pair.slice(eq + 1));
      } catch {
        return null;
      }
    }
  }
  return null;
}

const encoder = new TextEncoder();
/** `AUTH EXTERNAL` with no identity, the empty `DATA` answer, `BEGIN`: one write. */
const HANDSHAKE = encoder.encode("\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n");
const MAX_HANDSHAKE = 4096;

/** The bus daemon's own name: the sender of every message it originates. */
const BUS = "org.freedesktop.DBus";

/**
 * A method call marshalled before it is sent: {@linkcode BusConnection.prepare}'s result, or a
 * constant of known serial (`encodeCall`'s output, byte for byte, checked by a test).
 */
export interface PreparedCall {
  serial: number;
  destination: string | undefined;
  bytes: Uint8Array;
}

/** `Hello`, the first call of every connection (serial 1), as a {@linkcode HELLO} call. */
export const HELLO_CALL: Call = {
  destination: BUS,
  path: "/org/freedesktop/DBus",
  interface: BUS,
  member: "Hello",
};

/** The bus's `GetNameOwner(name)`, which {@linkcode BusConnection.pinOwner} sends. */
export function askOwnerCall(name: string): Call {
  return {
    destination: BUS,
    path: "/org/freedesktop/DBus",
    interface: BUS,
    member: "GetNameOwner",
    signature: "s",
    args: [name],
  };
}

/**
 * {@linkcode HELLO_CALL} marshalled ahead of time (`connection_test.ts` checks it against
 * `encodeCall`). The opening write is on the cached `token` path's critical path, and the
 * marshaller's first run in a fresh process costs ~1 ms of cold code (issue 14), so the calls
 * every read opens with are constants; the marshaller's first run then falls in the wait for
 * the keyring's first answer instead.
 */
export const HELLO: PreparedCall = {
  serial: 1,
  destination: BUS,
  bytes: Uint8Array.fromHex(
    "6c01000100000000010000006d00000001016f00150000002f6f72672f667265656465736b746f702f4442757300" +
      "000002017300140000006f72672e667265656465736b746f702e4442757300000000030173000500000048656c" +
      "6c6f00000006017300140000006f72672e667265656465736b746f702e4442757300000000",
  ),
};

interface Pending {
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
  /** Whether the caller reads the reply's body; when not, only its header is decoded. */
  body: boolean;
  /** Who may answer: the bus itself, the pinned name's owner, or anyone (no pin asked). */
  from: "bus" | "owner" | "any";
}

/** One connection to a bus. {@linkcode BusConnection.close} ends it and fails pending calls. */
export class BusConnection {
  readonly #conn: Deno.UnixConn;
  /** The last serial taken (by `prepare`, or by a call marshalled ahead of time). */
  #serial = 0;
  /** The last serial sent. */
  #sent = 0;
  #outbox: Uint8Array[] = [HANDSHAKE];
  #flushing = false;
  readonly #pending = new Map<number, Pending>();
  #closed: Error | null = null;
  /** The well-known name of {@linkcode BusConnection.pinOwner}, its owner once the bus said. */
  #pinned: { name: string; serial: number; owner: string | null; failed: Error | null } | null =
    null;
  /** Replies that may be the owner's, received before the bus named the owner. */
  #held: [Message, Uint8Array][] = [];
  /** Called with the sender of each reply dropped because it did not come from who was asked. */
  onForeign: ((sender: string) => void) | null = null;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /**
   * Connects to the bus socket at `path` and queues the handshake and `Hello` (their replies
   * are awaited by the first real call's). Needs `--allow-read --allow-write` on `path`.
   */
  static async open(path: string): Promise<BusConnection> {
    const conn = await Deno.connect({ transport: "unix", path });
    const bus = new BusConnection(conn);
    // Queued, not sent: it leaves with the first real call, in the same write.
    // A failed Hello fails every later call as well; its answer (our unique name) is not used.
    bus.#enqueue(HELLO, false).catch(() => {});
    bus.#readLoop();
    return bus;
  }

  /**
   * Sends a call (batched with the others of this tick); resolves with the reply. With
   * `{ body: false }` the reply's body is not decoded (its `body` is empty; its `signature`
   * says what it held): for a call made for its effect, whose answer only has to arrive.
   */
  call(call: Call, options?: { body?: boolean }): Promise<Message> {
    return this.send(this.prepare(call), options);
  }

  /**
   * Marshals `call` now, taking the next serial, for {@linkcode BusConnection.send} later:
   * a caller waiting on a reply it must have before sending more marshals the next calls
   * during that wait, so only the write is left once the reply is in.
   */
  prepare(call: Call): PreparedCall {
    const serial = ++this.#serial;
    return { serial, destination: call.destination, bytes: encodeCall(serial, call) };
  }

  /**
   * Sends a prepared call (batched with the others of this tick); resolves with the reply.
   * Calls go out in the order of their serials, each once: a call prepared after another is
   * sent after it (anything else is a bug here, and throws).
   */
  send(prepared: PreparedCall, options?: { body?: boolean }): Promise<Message> {
    const reply = this.#enqueue(prepared, options?.body ?? true);
    this.#scheduleFlush();
    return reply;
  }

  /**
   * From now on, replies to calls addressed to `name` are accepted only from the unique name
   * that owns it, which this asks the bus (`GetNameOwner`) in the same write as the calls of
   * this tick, ahead of them: the bus answers itself, at once, and a reply that arrives before
   * its answer is held until then. Resolves with the owner; rejects (and fails every call to
   * `name`) when nobody owns it. Call it before the calls it guards, once per connection.
   * `asking` is that `GetNameOwner`, marshalled ahead of time (see `secret_read.ts`).
   */
  pinOwner(name: string, asking?: PreparedCall): Promise<string> {
    const question = asking ?? this.prepare(askOwnerCall(name));
    if (question.destination !== BUS) throw new Error("GetNameOwner goes to the bus");
    const owner = this.send(question);
    this.#pinned = { name, serial: question.serial, owner: null, failed: null };
    return owner.then((reply) => reply.body[0] as string);
  }

  /** Closes the socket; pending calls fail with `DBusClosedError`. Idempotent. */
  close(): void {
    this.#fail(new DBusClosedError("connection closed"));
  }

  /** Resolves once every call made so far has been handed to the socket (or has failed). */
  written(): Promise<void> {
    return this.#written;
  }

  #enqueue(call: PreparedCall, body: boolean): Promise<Message> {
    const { serial, destination, bytes } = call;
    // The serial sits at bytes 8–11 of a little-endian message ('l', the only kind marshalled).
    const marked = bytes[8] | bytes[9] << 8 | bytes[10] << 16 | bytes[11] << 24;
    if (serial !== this.#sent + 1 || marked !== serial || bytes[0] !== 0x6c) {
      throw new Error(`call ${serial} sent out of order (after ${this.#sent}) or mismarked`);
    }
    this.#sent = serial;
    if (serial > this.#serial) this.#serial = serial;
    if (this.#closed) return Promise.reject(this.#closed);
    this.#outbox.push(bytes);
    const from = destination === BUS
      ? "bus"
      : destination !== undefined && destination === this.#pinned?.name
      ? "owner"
      : "any";
    if (from === "owner" && this.#pinned?.failed) return Promise.reject(this.#pinned.failed);
    return new Promise((resolve, reject) =>
      this.#pending.set(serial, { resolve, reject, from, body })
    );
  }

  /** The last flush; each flush starts after the one before, so writes never interleave. */
  #written: Promise<void> = Promise.resolve();

  #scheduleFlush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    const previous = this.#written;
    this.#written = new Promise<void>((resolve) => queueMicrotask(resolve))
      .then(() => {
        // Everything queued in this tick goes in this batch.
        this.#flushing = false;
        const parts = this.#outbox;
        this.#outbox = [];
        return previous.then(() => this.#writeAll(parts));
      });
  }

  async #writeAll(parts: Uint8Array[]): Promise<void> {
    let size = 0;
    for (const p of parts) size += p.length;
    const all = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    try {
      for (let written = 0; written < all.length && !this.#closed;) {
        written += await this.#conn.write(all.subarray(written));
      }
    } catch (error) {
      this.#fail(new DBusClosedError(`write failed: ${(error as Error).message}`));
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }

  async #readLoop(): Promise<void> {
    let buffer: Uint8Array = new Uint8Array(0);
    let authenticated = false;
    const chunk = new Uint8Array(16384);
    try {
      while (!this.#closed) {
        const n = await this.#conn.read(chunk);
        if (n === null) throw new DBusClosedError("the bus closed the connection");
        const joined = new Uint8Array(buffer.length + n);
        joined.set(buffer);
        joined.set(chunk.subarray(0, n), buffer.length);
        buffer = joined;
        if (!authenticated) {
          const rest = handshakeDone(buffer);
          if (rest === null) continue;
          authenticated = true;
          buffer = rest;
        }
        for (let length = messageLength(buffer); length > 0; length = messageLength(buffer)) {
          const frame = buffer.subarray(0, length);
          buffer = buffer.subarray(length);
          // Signals (the bus's NameAcquired after Hello) and calls to us are never answered
          // here: skipped on their type byte, undecoded (first decodes run cold: issue 14).
          if (frame[1] === SIGNAL || frame[1] === METHOD_CALL) continue;
          this.#dispatch(decodeMessage(frame, false), frame);
        }
      }
    } catch (error) {
      this.#fail(
        error instanceof DBusClosedError || error instanceof DBusWireError
          ? error
          : new DBusClosedError(`read failed: ${(error as Error).message}`),
      );
    }
  }

  /** `message` is `frame`'s header; the body is decoded only for a caller that reads it. */
  #dispatch(message: Message, frame: Uint8Array): void {
    if (message.type !== METHOD_RETURN && message.type !== ERROR) return; // signals, calls
    const pending = message.replySerial === undefined
      ? undefined
      : this.#pending.get(message.replySerial);
    if (!pending) return;
    const sender = message.sender ?? "";
    if (pending.from === "bus" && sender !== BUS) return this.#foreign(sender);
    if (pending.from === "owner") {
      const pin = this.#pinned!;
      // The bus reports an absent or vanished peer with an error of its own: that one is true.
      const fromBus = sender === BUS && message.type === ERROR;
      if (!fromBus && pin.owner === null) {
        if (pin.failed === null) this.#held.push([message, frame]);
        return;
      }
      if (!fromBus && sender !== pin.owner) return this.#foreign(sender);
    }
    this.#pending.delete(message.replySerial!);
    if (pending.body || message.type === ERROR) {
      message.body = decodeMessage(frame).body; // malformed: thrown to the read loop, which fails all
    }
    if (message.replySerial === this.#pinned?.serial) this.#settlePin(message);
    if (message.type === METHOD_RETURN) return pending.resolve(message);
    const detail = typeof message.body[0] === "string" ? message.body[0] : "";
    pending.reject(new DBusCallError(message.errorName ?? "unknown error", detail.slice(0, 200)));
  }

  /** The bus answered `GetNameOwner`: replies held until now are sorted out. */
  #settlePin(reply: Message): void {
    const pin = this.#pinned!;
    const owner = reply.type === METHOD_RETURN ? reply.body[0] : undefined;
    if (typeof owner === "string" && owner.startsWith(":")) {
      pin.owner = owner;
    } else {
      pin.failed = new DBusCallError(
        reply.errorName ?? "org.freedesktop.DBus.Error.NameHasNoOwner",
        `nobody owns ${pin.name}`,
      );
      for (const [serial, p] of this.#pending) {
        if (p.from !== "owner") continue;
        this.#pending.delete(serial);
        p.reject(pin.failed);
      }
    }
    const held = this.#held;
    this.#held = [];
    for (const [message, frame] of held) this.#dispatch(message, frame);
  }

  #foreign(sender: string): void {
    this.onForeign?.(sender);
  }
}

/**
 * Consumes the server's handshake lines: the empty `DATA` challenge, then `OK <guid>`. Returns
 * the bytes after the `OK` line, or `null` while it has not arrived. `REJECTED`, `ERROR` or an
 * overlong handshake throw.
 */
function handshakeDone(buffer: Uint8Array): Uint8Array | null {
  let start = 0;
  for (;;) {
    const end = indexOfCrLf(buffer, start);
    if (end < 0) {
      if (buffer.length > MAX_HANDSHAKE) throw new DBusWireError("handshake too long");
      return null;
    }
    let line: string;
    try {
      line = decodeUtf8(buffer.subarray(start, end));
    } catch {
      throw new DBusClosedError("the bus sent a handshake line that is not UTF-8");
    }
    start = end + 2;
    if (line.startsWith("OK ")) return buffer.subarray(start);
    if (line === "DATA" || line.startsWith("DATA ")) continue;
    throw new DBusClosedError(`the bus refused the handshake: ${line.slice(0, 80)}`);
  }
}

function indexOfCrLf(buffer: Uint8Array, from: number): number {
  for (let i = from; i + 1 < buffer.length; i++) {
    if (buffer[i] === 13 && buffer[i + 1] === 10) return i;
  }
  return -1;
}
