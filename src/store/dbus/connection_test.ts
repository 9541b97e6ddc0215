/**
 * {@linkcode BusConnection}'s sender rules (issue 11 #2) against a scripted bus on a Unix
 * socket: the test plays the bus daemon, so it chooses each reply's sender and the order in
 * which they arrive, including replies that come before the bus has named the owner.
 */
import assert from "node:assert/strict";
import { BusConnection, HELLO, HELLO_CALL } from "./connection.ts";
import { ASK_OWNER, ASK_OWNER_CALL, GREETING, GREETING_CALL } from "./secret_read.ts";
import {
  decodeMessage,
  encodeCall,
  type Message,
  messageLength,
  METHOD_RETURN,
  parseSignature,
  type Variant,
  Writer,
} from "./wire.ts";

const BUS = "org.freedesktop.DBus";

/** A method return as the bus would deliver it: `sender` stamped, one string argument. */
function reply(replySerial: number, sender: string, text: string, serial: number): Uint8Array {
  const body = new Writer();
  body.write(parseSignature("s")[0], text);
  const fields: [number, Variant][] = [
    [5, { signature: "u", value: replySerial }],
    [7, { signature: "s", value: sender }],
    [8, { signature: "g", value: "s" }],
  ];
  const w = new Writer();
  w.u8(0x6c);
  w.u8(METHOD_RETURN);
  w.u8(0);
  w.u8(1);
  w.u32(body.length);
  w.u32(serial);
  w.write(parseSignature("a(yv)")[0], fields);
  w.align(8);
  w.raw(body.bytes());
  return w.bytes();
}

/** Accepts one client, answers its handshake, and hands back its first `count` messages. */
async function scriptedBus(path: string, count: number) {
  const listener = Deno.listen({ transport: "unix", path });
  const conn = await listener.accept();
  let buffer = new Uint8Array(0);
  const messages: Message[] = [];
  const chunk = new Uint8Array(4096);
  let greeted = false;
  while (messages.length < count) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("client went away");
    const joined = new Uint8Array(buffer.length + n);
    joined.set(buffer);
    joined.set(chunk.subarray(0, n), buffer.length);
    buffer = joined;
    if (!greeted) {
      const text = new TextDecoder().decode(buffer);
      const end = text.indexOf("BEGIN\r\n");
      if (end < 0) continue;
      buffer = buffer.subarray(end + 7);
      await conn.write(new TextEncoder().encode("DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n"));
      greeted = true;
    }
    for (let len = messageLength(buffer); len > 0; len = messageLength(buffer)) {
      messages.push(decodeMessage(buffer.subarray(0, len)));
      buffer = buffer.subarray(len);
    }
  }
  return { conn, listener, messages };
}

Deno.test("dbus connection: replies to a pinned name count only from its owner; ones that came before the bus named it are held, then sorted (issue 11 #2)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bus`;
  try {
    const serving = scriptedBus(path, 3); // Hello, GetNameOwner, the call
    const bus = await BusConnection.open(path);
    const foreign: string[] = [];
    bus.onForeign = (sender) => foreign.push(sender);
    const owner = bus.pinOwner("org.freedesktop.secrets");
    const answer = bus.call({
      destination: "org.freedesktop.secrets",
      path: "/org/freedesktop/secrets",
      interface: "org.example.Test",
      member: "Ask",
    });
    const { conn, listener, messages } = await serving;
    const [hello, getOwner, ask] = messages.map((m) => m.serial);
    assert.deepEqual(messages.map((m) => m.member), ["Hello", "GetNameOwner", "Ask"]);
    // Before the bus has spoken: a forgery and the real answer (held, both), a forged
    // GetNameOwner answer from a peer (dropped: only the bus answers for the bus).
    for (
      const bytes of [
        reply(ask, ":1.66", "forged", 1),
        reply(ask, ":1.5", "real", 2),
        reply(getOwner, ":1.66", ":1.66", 3),
        reply(hello, BUS, ":1.9", 4),
        reply(getOwner, BUS, ":1.5", 5),
      ]
    ) await conn.write(bytes);
    assert.equal(await owner, ":1.5");
    assert.deepEqual((await answer).body, ["real"]);
    assert.deepEqual(foreign, [":1.66", ":1.66"], "the peer's two answers were dropped");
    bus.close();
    conn.close();
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dbus connection: when nobody owns the pinned name, calls to it fail instead of waiting (issue 11 #2)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bus`;
  try {
    const serving = scriptedBus(path, 3);
    const bus = await BusConnection.open(path);
    const owner = bus.pinOwner("org.freedesktop.secrets");
    owner.catch(() => {});
    const answer = bus.call({ destination: "org.freedesktop.secrets", path: "/x", member: "Ask" });
    answer.catch(() => {});
    const { conn, listener, messages } = await serving;
    const [hello, getOwner] = messages.map((m) => m.serial);
    await conn.write(reply(hello, BUS, ":1.9", 1));
    // An error from the bus: NameHasNoOwner (built as a return with the error type patched).
    const error = reply(getOwner, BUS, "Could not get owner of name", 2);
    error[1] = 3; // ERROR; its error-name field is absent, which the client tolerates
    await conn.write(error);
    await assert.rejects(owner);
    await assert.rejects(answer, /NameHasNoOwner|nobody owns/);
    bus.close();
    conn.close();
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dbus connection: the calls marshalled ahead of time are encodeCall's bytes, serial for serial (issue 14)", () => {
  for (
    const [prepared, call] of [
      [HELLO, HELLO_CALL],
      [ASK_OWNER, ASK_OWNER_CALL],
      [GREETING, GREETING_CALL],
    ] as const
  ) {
    assert.deepEqual(prepared.bytes, encodeCall(prepared.serial, call), call.member);
    assert.equal(prepared.destination, call.destination, call.member);
  }
  assert.deepEqual([HELLO, ASK_OWNER, GREETING].map((p) => p.serial), [1, 2, 3]);
});

Deno.test("dbus connection: prepared calls go out in the order of their serials, or not at all (issue 14)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bus`;
  try {
    const serving = scriptedBus(path, 4); // Hello, GetNameOwner, GetAll, the prepared call
    const bus = await BusConnection.open(path);
    bus.pinOwner("org.freedesktop.secrets", ASK_OWNER).catch(() => {});
    bus.send(GREETING).catch(() => {});
    const first = bus.prepare({ destination: "org.freedesktop.secrets", path: "/a", member: "A" });
    const second = bus.prepare({ destination: "org.freedesktop.secrets", path: "/b", member: "B" });
    assert.deepEqual([first.serial, second.serial], [4, 5]);
    assert.throws(() => bus.send(second), /out of order/);
    assert.throws(() => bus.send(GREETING), /out of order/, "a serial sent twice");
    bus.send(first).catch(() => {});
    const { conn, listener, messages } = await serving;
    assert.deepEqual(messages.map((m) => [m.serial, m.member]), [
      [1, "Hello"],
      [2, "GetNameOwner"],
      [3, "GetAll"],
      [4, "A"],
    ]);
    bus.close();
    conn.close();
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dbus connection: signals are skipped undecoded, and a reply asked for without its body has only a header (issue 14)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bus`;
  try {
    const serving = scriptedBus(path, 3); // Hello, and the two calls
    const bus = await BusConnection.open(path);
    const bare = bus.call({ destination: ":1.5", path: "/a", member: "A" }, { body: false });
    const full = bus.call({ destination: ":1.5", path: "/b", member: "B" });
    const { conn, listener, messages } = await serving;
    const [hello, a, b] = messages.map((m) => m.serial);
    // A signal whose body is garbage: decoding it would fail the connection; it is skipped.
    const signal = reply(hello, BUS, ":1.9", 1);
    signal[1] = 4; // SIGNAL
    signal[signal.length - 2] = 0xff; // inside the string: not UTF-8
    for (
      const bytes of [
        signal,
        reply(hello, BUS, ":1.9", 2),
        reply(a, ":1.5", "x", 3),
        reply(b, ":1.5", "y", 4),
      ]
    ) await conn.write(bytes);
    const [ra, rb] = await Promise.all([bare, full]);
    assert.deepEqual([ra.signature, ra.body], ["s", []]);
    assert.deepEqual([rb.signature, rb.body], ["s", ["y"]]);
    bus.close();
    conn.close();
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
