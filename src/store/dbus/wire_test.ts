import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { Prng } from "../../../test/fixtures/prng.ts";
import {
  DBusWireError,
  decodeMessage,
  decodeUtf8,
  encodeCall,
  isObjectPath,
  messageLength,
  METHOD_CALL,
  NO_AUTO_START,
  parseSignature,
  Reader,
  Writer,
} from "./wire.ts";

const assertThrows = (fn: () => unknown, type: typeof DBusWireError, what?: string) =>
  throws(fn, type, what);
const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("wire: Hello encodes byte for byte as the specification lays it out", () => {
  const bytes = encodeCall(1, {
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "Hello",
  });
  // 'l', METHOD_CALL, no flags, version 1, body 0 bytes, serial 1, then the a(yv) header fields:
  // array length, and each field 8-aligned: code, signature, value (u32 length, bytes, NUL).
  const expected = "6c010001" + "00000000" + "01000000" + "6d000000" +
    "01016f00" + "15000000" + hex(new TextEncoder().encode("/org/freedesktop/DBus")) + "00" +
    "0000" + // pad to 8
    "02017300" + "14000000" + hex(new TextEncoder().encode("org.freedesktop.DBus")) + "00" +
    "000000" +
    "03017300" + "05000000" + hex(new TextEncoder().encode("Hello")) + "00" +
    "0000" +
    "06017300" + "14000000" + hex(new TextEncoder().encode("org.freedesktop.DBus")) + "00" +
    "000000"; // the header ends 8-aligned, where the (empty) body starts
  assertEquals(hex(bytes), expected);
  assertEquals(messageLength(bytes), bytes.length);
});

Deno.test("wire: a call round-trips through decodeMessage with its header and body", () => {
  const bytes = encodeCall(7, {
    destination: "org.freedesktop.secrets",
    path: "/org/freedesktop/secrets",
    interface: "org.freedesktop.Secret.Service",
    member: "OpenSession",
    signature: "sv",
    args: ["dh-ietf1024-sha256-aes128-cbc-pkcs7", {
      signature: "ay",
      value: new Uint8Array([0, 1, 2, 255]),
    }],
    flags: NO_AUTO_START,
  });
  const m = decodeMessage(bytes);
  assertEquals(m.type, METHOD_CALL);
  assertEquals(m.flags, NO_AUTO_START);
  assertEquals(m.serial, 7);
  assertEquals(m.member, "OpenSession");
  assertEquals(m.signature, "sv");
  assertEquals(m.body, ["dh-ietf1024-sha256-aes128-cbc-pkcs7", {
    signature: "ay",
    value: new Uint8Array([0, 1, 2, 255]),
  }]);
});

Deno.test("wire: every type round-trips, with the alignment each needs", () => {
  const cases: [string, unknown][] = [
    ["y", 255],
    ["b", true],
    ["n", -2],
    ["q", 65535],
    ["i", -123456],
    ["u", 4294967295],
    ["x", -(2n ** 62n)],
    ["t", 2n ** 64n - 1n],
    ["d", 3.25],
    ["s", "🔑 ключ"],
    ["o", "/org/freedesktop/secrets/collection/login/1"],
    ["g", "a{sv}(oayays)"],
    ["ay", new Uint8Array([1, 2, 3])],
    ["ao", ["/a", "/b/c"]],
    ["a{ss}", [["service", "agent-runner-auth"], ["account", "x"]]],
    ["(oayays)", ["/s/1", new Uint8Array(16), new Uint8Array([9, 8]), "text/plain"]],
    ["a(yv)", [[1, { signature: "o", value: "/" }], [5, { signature: "u", value: 3 }]]],
    ["v", { signature: "av", value: [{ signature: "t", value: 1n }] }],
    ["aay", [new Uint8Array(0), new Uint8Array([7])]],
  ];
  for (const [signature, value] of cases) {
    // A leading byte puts every value off its natural alignment.
    const types = parseSignature(`y${signature}`);
    const w = new Writer();
    w.write(types[0], 1);
    w.write(types[1], value);
    const r = new Reader(w.bytes(), true);
    assertEquals(r.read(types[0]), 1, signature);
    assertEquals(r.read(types[1]), value, signature);
    assertEquals(r.offset, w.length, `${signature}: everything consumed`);
  }
});

Deno.test("wire: a big-endian message from another peer decodes the same", () => {
  const little = encodeCall(3, { path: "/p", member: "M", signature: "u", args: [0x01020304] });
  // Re-marshal by hand in big-endian: flip the endianness byte and every u32 we wrote.
  const r = decodeMessage(little);
  assertEquals(r.body, [0x01020304]);
  const big = little.slice();
  big[0] = 0x42;
  const view = new DataView(big.buffer);
  for (const at of [4, 8, 12]) view.setUint32(at, new DataView(little.buffer).getUint32(at, true));
  // The header fields' u32 lengths: the path's at 20, the member's at 36; the body u32 last.
  view.setUint32(20, 2);
  view.setUint32(36, 1);
  view.setUint32(big.length - 4, 0x01020304);
  assertEquals(decodeMessage(big).body, [0x01020304]);
});

Deno.test("wire: malformed signatures and messages are DBusWireError, never a crash", () => {
  for (const bad of ["a", "(", "()", "a{vs}", "a{s}", "z", "(s", "a{ss", "a".repeat(70) + "y"]) {
    assertThrows(() => parseSignature(bad), DBusWireError, bad);
  }
  const good = encodeCall(1, { path: "/p", member: "M", signature: "sb", args: ["x", true] });
  const mutate = (f: (b: Uint8Array) => void) => {
    const b = good.slice();
    f(b);
    return b;
  };
  const broken: [string, Uint8Array][] = [
    ["endianness", mutate((b) => b[0] = 0x78)],
    ["version", mutate((b) => b[3] = 2)],
    ["serial 0", mutate((b) => b.fill(0, 8, 12))],
    ["message type", mutate((b) => b[1] = 9)],
    ["boolean 2", mutate((b) => b[b.length - 4] = 2)],
    ["truncated", good.slice(0, good.length - 1)],
    ["non-zero padding", mutate((b) => b[b.length - 8 + 2 - 4] = 0xff)],
  ];
  const typed = encodeCall(1, { path: "/p", member: "M", signature: "u", args: [7] });
  const noBody = typed.slice(0, typed.length - 4);
  new DataView(noBody.buffer).setUint32(4, 0, true);
  broken.push(["a signature with no body", noBody]);
  for (const [what, bytes] of broken) {
    assertThrows(
      () => {
        if (messageLength(bytes) !== bytes.length) throw new DBusWireError("incomplete");
        decodeMessage(bytes);
      },
      DBusWireError,
      what,
    );
  }
  const huge = good.slice();
  new DataView(huge.buffer).setUint32(4, 1 << 30, true);
  assertThrows(() => messageLength(huge), DBusWireError);
});

Deno.test("wire: values that do not fit their type are refused before anything is sent", () => {
  const w = new Writer();
  const [y, o, s, v] = parseSignature("yosv");
  assertThrows(() => w.write(y, 256), DBusWireError);
  assertThrows(() => w.write(o, "not/a/path"), DBusWireError);
  assertThrows(() => w.write(s, "nul\0inside"), DBusWireError);
  assertThrows(() => w.write(v, { signature: "ss", value: ["a", "b"] }), DBusWireError);
});

Deno.test("wire: fuzz (fixed seed): mutated and random messages only ever throw DBusWireError", () => {
  const SEED = 0xdb05_0001;
  const rng = new Prng(SEED);
  const samples = [
    encodeCall(2, {
      path: "/org/freedesktop/secrets",
      member: "OpenSession",
      signature: "vo",
      args: [{ signature: "ay", value: new Uint8Array(128).fill(7) }, "/s/1"],
    }),
    encodeCall(3, {
      path: "/p",
      member: "SearchItems",
      signature: "aoao",
      args: [["/a/1", "/a/2"], []],
    }),
    encodeCall(4, {
      path: "/p",
      member: "GetSecret",
      signature: "(oayays)",
      args: [["/s/1", new Uint8Array(16), new Uint8Array(48), "text/plain"]],
    }),
  ];
  let decoded = 0;
  for (let i = 0; i < 6000; i++) {
    let bytes: Uint8Array;
    if (i % 10 === 9) {
      bytes = new Uint8Array(rng.int(200));
      for (let j = 0; j < bytes.length; j++) bytes[j] = rng.int(256);
      if (bytes.length > 3) bytes[0] = 0x6c;
    } else {
      bytes = samples[i % samples.length].slice();
      for (let k = rng.int(4) + 1; k > 0; k--) {
        const at = rng.int(bytes.length);
        bytes[at] = rng.chance(0.5) ? bytes[at] ^ (1 << rng.int(8)) : rng.int(256);
      }
      if (rng.chance(0.2)) bytes = bytes.slice(0, rng.int(bytes.length));
    }
    try {
      const length = messageLength(bytes);
      if (length > 0) {
        decodeMessage(bytes.subarray(0, length));
        decoded++;
      }
    } catch (error) {
      if (!(error instanceof DBusWireError)) {
        throw new Error(`seed ${SEED} input #${i} (${hex(bytes)}): ${error}`);
      }
    }
  }
  // Some single-bit flips land in a value and still decode: the fuzz reached the body parser.
  if (decoded === 0) throw new Error("no mutated message decoded at all: the fuzz is too coarse");
});

Deno.test("wire: isObjectPath agrees with the specification's grammar (fixed seed, 20,000 strings)", () => {
  const reference = (p: string) => p === "/" || /^(\/[A-Za-z0-9_]+)+$/.test(p);
  for (
    const p of ["/", "/a", "/org/freedesktop/secrets", "//", "/a/", "a", "", "/a//b", "/a-b", "/é"]
  ) {
    assertEquals(isObjectPath(p), reference(p), JSON.stringify(p));
  }
  const alphabet = "/a_Z09-./é ";
  const rng = new Prng(14);
  for (let n = 0; n < 20_000; n++) {
    let p = rng.chance(0.7) ? "/" : "";
    for (let i = rng.int(12); i > 0; i--) p += alphabet[rng.int(alphabet.length)];
    assertEquals(isObjectPath(p), reference(p), JSON.stringify(p));
  }
});

Deno.test("wire: decodeUtf8 decodes ASCII and UTF-8 alike, and refuses invalid UTF-8 (issue 14)", () => {
  const enc = new TextEncoder();
  for (
    const s of [
      "",
      ":1.9",
      "/org/freedesktop/secrets",
      "eyJ".repeat(3000),
      "héllo ✓",
      "a".repeat(9000),
    ]
  ) {
    assertEquals(decodeUtf8(enc.encode(s)), s);
  }
  throws(() => decodeUtf8(new Uint8Array([0x61, 0xff])), TypeError);
  throws(() => decodeUtf8(new Uint8Array([0xc3])), TypeError);
});
