/**
 * The D-Bus wire format (D-Bus specification, "Message Protocol"): enough of it to make method
 * calls and read their replies. Signature-driven marshalling of every basic and container type
 * except Unix fds (`h` travels as its `u` index only); strict, bounds-checked unmarshalling that
 * throws {@linkcode DBusWireError} on anything malformed, so a hostile or broken peer costs a
 * fallback, never a crash.
 *
 * Values: `y n q i u` numbers, `x t` bigints, `d` number, `b` boolean, `s o g` strings, `ay` a
 * `Uint8Array`, other arrays JS arrays, `a{..}` arrays of `[key, value]`, structs JS arrays, `v`
 * {@linkcode Variant}.
 *
 * No imports: this is on the cached `token` path (SPEC.md §8).
 *
 * @module
 */

/** A malformed signature, message or value. */
export class DBusWireError extends Error {
  override name = "DBusWireError";
}

/** A `v`: a value with its own signature. */
export interface Variant {
  signature: string;
  value: unknown;
}

/** One complete type from a signature. */
export type DBusType =
  | { code: "y" | "b" | "n" | "q" | "i" | "u" | "x" | "t" | "d" | "s" | "o" | "g" | "h" | "v" }
  | { code: "a"; element: DBusType }
  | { code: "("; fields: DBusType[] }
  | { code: "{"; key: DBusType; value: DBusType };

const BASIC = "ybnqiuxtdsogh";
/** The specification's limits: 32 nested arrays plus 32 nested structs, 255-byte signatures. */
const MAX_DEPTH = 64;
const MAX_SIGNATURE = 255;
/** Bigger messages are refused here: a token store answers a few kilobytes. */
export const MAX_MESSAGE = 1 << 20;

/** Parses a signature into its complete types (`"sv"` → two types). */
export function parseSignature(signature: string): DBusType[] {
  if (signature.length > MAX_SIGNATURE) throw new DBusWireError("signature too long");
  let i = 0;
  const one = (depth: number): DBusType => {
    if (depth > MAX_DEPTH) throw new DBusWireError("signature nested too deeply");
    const c = signature[i++];
    if (c === undefined) throw new DBusWireError(`truncated signature "${signature}"`);
    if (BASIC.includes(c) || c === "v") return { code: c } as DBusType;
    if (c === "a") {
      if (signature[i] === "{") {
        i++;
        const key = one(depth + 1);
        if (!BASIC.includes(key.code)) throw new DBusWireError("dict key must be a basic type");
        const value = one(depth + 1);
        if (signature[i++] !== "}") {
          throw new DBusWireError(`unclosed dict entry in "${signature}"`);
        }
        return { code: "a", element: { code: "{", key, value } };
      }
      return { code: "a", element: one(depth + 1) };
    }
    if (c === "(") {
      const fields: DBusType[] = [];
      while (signature[i] !== ")") {
        if (i >= signature.length) throw new DBusWireError(`unclosed struct in "${signature}"`);
        fields.push(one(depth + 1));
      }
      i++;
      if (fields.length === 0) throw new DBusWireError("empty struct");
      return { code: "(", fields };
    }
    throw new DBusWireError(`bad type code ${JSON.stringify(c)} in signature`);
  };
  const types: DBusType[] = [];
  while (i < signature.length) types.push(one(0));
  return types;
}

function alignment(t: DBusType): number {
  switch (t.code) {
    case "y":
    case "g":
    case "v":
      return 1;
    case "n":
    case "q":
      return 2;
    case "x":
    case "t":
    case "d":
    case "(":
    case "{":
      return 8;
    default:
      return 4;
  }
}

const encoder = new TextEncoder();
let utf8Decoder: TextDecoder | undefined;

/** Up to this many bytes, ASCII goes through `String.fromCharCode` (arguments are on the stack). */
const FAST_ASCII_MAX = 8192;

/**
 * UTF-8 bytes → string; invalid UTF-8 throws a `TypeError`. ASCII, which is all a Secret
 * Service read carries (names, paths, signatures, a token), is decoded by
 * `String.fromCharCode`: Deno's `TextDecoder` costs ~0.6 ms on its first use in a process, on
 * the cached `token` path's critical path (issue 14); ASCII is valid UTF-8 as it stands. The
 * builtins are called through `apply`, which is three times cheaper cold than spreading.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const codes = bytes as unknown as number[];
  if (bytes.length <= FAST_ASCII_MAX && Math.max.apply(null, codes) < 0x80) {
    return String.fromCharCode.apply(null, codes);
  }
  return (utf8Decoder ??= new TextDecoder("utf-8", { fatal: true })).decode(bytes);
}

/** Appends marshalled values to a growing buffer; offsets are relative to its start. */
export class Writer {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#bytes.length) return;
    const bigger = new Uint8Array(Math.max(this.#bytes.length * 2, this.length + n));
    bigger.set(this.#bytes);
    this.#bytes = bigger;
    this.#view = new DataView(bigger.buffer);
  }

  align(n: number): void {
    const pad = (n - (this.length % n)) % n;
    this.#reserve(pad);
    this.#bytes.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  u8(v: number): void {
    this.#reserve(1);
    this.#bytes[this.length++] = v;
  }

  u32(v: number): void {
    this.align(4);
    this.#reserve(4);
    this.#view.setUint32(this.length, v, true);
    this.length += 4;
  }

  /** Overwrites a u32 written earlier (an array's length). */
  patchU32(at: number, v: number): void {
    this.#view.setUint32(at, v, true);
  }

  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Marshals `value` as `type` (little-endian). */
  write(type: DBusType, value: unknown): void {
    switch (type.code) {
      case "y":
        return this.u8(num(value, 0, 0xff));
      case "b":
        if (typeof value !== "boolean") throw new DBusWireError("expected a boolean");
        return this.u32(value ? 1 : 0);
      case "n":
      case "q": {
        this.align(2);
        this.#reserve(2);
        const v = type.code === "n" ? num(value, -0x8000, 0x7fff) : num(value, 0, 0xffff);
        this.#view.setUint16(this.length, v & 0xffff, true);
        this.length += 2;
        return;
      }
      case "i":
        this.align(4);
        this.#reserve(4);
        this.#view.setInt32(this.length, num(value, -0x80000000, 0x7fffffff), true);
        this.length += 4;
        return;
      case "u":
      case "h":
        return this.u32(num(value, 0, 0xffffffff));
      case "x":
      case "t":
        if (typeof value !== "bigint") throw new DBusWireError("expected a bigint");
        this.align(8);
        this.#reserve(8);
        if (type.code === "x") this.#view.setBigInt64(this.length, value, true);
        else this.#view.setBigUint64(this.length, value, true);
        this.length += 8;
        return;
      case "d":
        if (typeof value !== "number") throw new DBusWireError("expected a number");
        this.align(8);
        this.#reserve(8);
        this.#view.setFloat64(this.length, value, true);
        this.length += 8;
        return;
      case "s":
      case "o": {
        if (typeof value !== "string") throw new DBusWireError("expected a string");
        if (type.code === "o" && !isObjectPath(value)) {
          throw new DBusWireError(`not an object path: ${JSON.stringify(value.slice(0, 80))}`);
        }
        const bytes = encoder.encode(value);
        if (bytes.includes(0)) throw new DBusWireError("string contains NUL");
        this.u32(bytes.length);
        this.raw(bytes);
        return this.u8(0);
      }
      case "g": {
        if (typeof value !== "string") throw new DBusWireError("expected a signature");
        parseSignature(value);
        this.u8(value.length);
        this.raw(encoder.encode(value));
        return this.u8(0);
      }
      case "v": {
        const v = value as Variant;
        const types = parseSignature(v?.signature ?? "");
        if (types.length !== 1) throw new DBusWireError("a variant holds exactly one type");
        this.write({ code: "g" }, v.signature);
        return this.write(types[0], v.value);
      }
      case "a": {
        this.u32(0);
        const lengthAt = this.length - 4;
        this.align(alignment(type.element));
        const start = this.length;
        if (type.element.code === "y" && value instanceof Uint8Array) {
          this.raw(value);
        } else {
          if (!Array.isArray(value)) throw new DBusWireError("expected an array");
          for (const element of value) this.write(type.element, element);
        }
        return this.patchU32(lengthAt, this.length - start);
      }
      case "(": {
        if (!Array.isArray(value) || value.length !== type.fields.length) {
          throw new DBusWireError(`expected a struct of ${type.fields.length}`);
        }
        this.align(8);
        type.fields.forEach((field, i) => this.write(field, value[i]));
        return;
      }
      case "{": {
        if (!Array.isArray(value) || value.length !== 2) {
          throw new DBusWireError("expected a [key, value] pair");
        }
        this.align(8);
        this.write(type.key, value[0]);
        return this.write(type.value, value[1]);
      }
    }
  }

  /** A copy of what was written. */
  bytes(): Uint8Array {
    return this.#bytes.slice(0, this.length);
  }
}

function num(value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new DBusWireError(`expected an integer in [${min}, ${max}]`);
  }
  return value;
}

/**
 * `/` or `/seg/seg` with segments of `[A-Za-z0-9_]`. A loop, not a regular expression: V8
 * compiles a regular expression to native code on its second use, ~0.3 ms in a fresh process,
 * and the cached `token` path marshals a handful of paths once (issue 14).
 */
export function isObjectPath(path: string): boolean {
  if (path === "/") return true;
  if (path.length < 2 || path.charCodeAt(0) !== 0x2f || path.endsWith("/")) return false;
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x2f) {
      if (path.charCodeAt(i - 1) === 0x2f) return false; // an empty segment
    } else if (
      !((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
        c === 0x5f)
    ) return false;
  }
  return true;
}

/** Reads marshalled values from a message's bytes; offsets are relative to the message start. */
export class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #little: boolean;
  readonly #end: number;
  offset: number;

  constructor(bytes: Uint8Array, little: boolean, offset = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#little = little;
    this.offset = offset;
    this.#end = end;
  }

  #need(n: number): void {
    if (this.offset + n > this.#end) throw new DBusWireError("message truncated");
  }

  align(n: number): void {
    const pad = (n - (this.offset % n)) % n;
    this.#need(pad);
    for (let i = 0; i < pad; i++) {
      if (this.#bytes[this.offset + i] !== 0) throw new DBusWireError("non-zero padding");
    }
    this.offset += pad;
  }

  u8(): number {
    this.#need(1);
    return this.#bytes[this.offset++];
  }

  u32(): number {
    this.align(4);
    this.#need(4);
    const v = this.#view.getUint32(this.offset, this.#little);
    this.offset += 4;
    return v;
  }

  #string(length: number): string {
    this.#need(length + 1);
    const bytes = this.#bytes.subarray(this.offset, this.offset + length);
    if (this.#bytes[this.offset + length] !== 0 || bytes.includes(0)) {
      throw new DBusWireError("bad string termination");
    }
    this.offset += length + 1;
    try {
      return decodeUtf8(bytes);
    } catch {
      throw new DBusWireError("string is not UTF-8");
    }
  }

  /** Unmarshals one value of `type`. */
  read(type: DBusType, depth = 0): unknown {
    if (depth > MAX_DEPTH) throw new DBusWireError("value nested too deeply");
    switch (type.code) {
      case "y":
        return this.u8();
      case "b": {
        const v = this.u32();
        if (v > 1) throw new DBusWireError("boolean out of range");
        return v === 1;
      }
      case "n":
      case "q": {
        this.align(2);
        this.#need(2);
        const v = type.code === "n"
          ? this.#view.getInt16(this.offset, this.#little)
          : this.#view.getUint16(this.offset, this.#little);
        this.offset += 2;
        return v;
      }
      case "i": {
        this.align(4);
        this.#need(4);
        const v = this.#view.getInt32(this.offset, this.#little);
        this.offset += 4;
        return v;
      }
      case "u":
      case "h":
        return this.u32();
      case "x":
      case "t":
      case "d": {
        this.align(8);
        this.#need(8);
        const v = type.code === "x"
          ? this.#view.getBigInt64(this.offset, this.#little)
          : type.code === "t"
          ? this.#view.getBigUint64(this.offset, this.#little)
          : this.#view.getFloat64(this.offset, this.#little);
        this.offset += 8;
        return v;
      }
      case "s":
      case "o": {
        const s = this.#string(this.u32());
        if (type.code === "o" && !isObjectPath(s)) throw new DBusWireError("bad object path");
        return s;
      }
      case "g":
        return this.#string(this.u8());
      case "v": {
        const signature = this.#string(this.u8());
        const types = parseSignature(signature);
        if (types.length !== 1) throw new DBusWireError("a variant holds exactly one type");
        return { signature, value: this.read(types[0], depth + 1) } satisfies Variant;
      }
      case "a": {
        const length = this.u32();
        if (length > MAX_MESSAGE) throw new DBusWireError("array too long");
        this.align(alignment(type.element));
        const end = this.offset + length;
        this.#need(length);
        if (type.element.code === "y") {
          this.offset = end;
          return this.#bytes.slice(end - length, end);
        }
        const out: unknown[] = [];
        while (this.offset < end) out.push(this.read(type.element, depth + 1));
        if (this.offset !== end) throw new DBusWireError("array length mismatch");
        return out;
      }
      case "(": {
        this.align(8);
        return type.fields.map((field) => this.read(field, depth + 1));
      }
      case "{": {
        this.align(8);
        return [this.read(type.key, depth + 1), this.read(type.value, depth + 1)];
      }
    }
  }
}

/** Message types. */
export const METHOD_CALL = 1;
export const METHOD_RETURN = 2;
export const ERROR = 3;
export const SIGNAL = 4;

/** Header flags. */
export const NO_AUTO_START = 0x2;

/** Header field codes and the type each carries. */
const FIELDS = {
  path: [1, "o"],
  interface: [2, "s"],
  member: [3, "s"],
  errorName: [4, "s"],
  replySerial: [5, "u"],
  destination: [6, "s"],
  sender: [7, "s"],
  signature: [8, "g"],
} as const;

type FieldName = keyof typeof FIELDS;

/** A decoded message: its header fields and its body values. */
export interface Message {
  type: number;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature?: string;
  body: unknown[];
}

const HEADER_FIELDS = parseSignature("a(yv)")[0];
/** {@linkcode FIELDS} by code, for decoding. */
const FIELD_BY_CODE = new Map<number, FieldName>(
  Object.entries(FIELDS).map(([name, [code]]) => [code, name as FieldName]),
);

/** A method call: where it goes, and `args` typed by `signature`. */
export interface Call {
  destination?: string;
  path: string;
  interface?: string;
  member: string;
  signature?: string;
  args?: unknown[];
  flags?: number;
}

/** Encodes a method call. */
export function encodeCall(serial: number, call: Call): Uint8Array {
  const body = new Writer();
  const types = parseSignature(call.signature ?? "");
  const args = call.args ?? [];
  if (types.length !== args.length) throw new DBusWireError("argument count mismatch");
  types.forEach((t, i) => body.write(t, args[i]));

  const fields: [number, Variant][] = [];
  const add = (name: FieldName, value: string | undefined) => {
    if (value === undefined || value === "") return;
    const [code, signature] = FIELDS[name];
    fields.push([code, { signature, value }]);
  };
  add("path", call.path);
  add("interface", call.interface);
  add("member", call.member);
  add("destination", call.destination);
  add("signature", call.signature);

  const w = new Writer();
  w.u8(0x6c); // 'l'
  w.u8(METHOD_CALL);
  w.u8(call.flags ?? 0);
  w.u8(1); // protocol version
  w.u32(body.length);
  w.u32(serial);
  w.write(HEADER_FIELDS, fields);
  w.align(8);
  w.raw(body.bytes());
  return w.bytes();
}

/**
 * The length of the complete message at the start of `bytes`, or 0 when more bytes are needed.
 * Throws on a header that cannot be a message.
 */
export function messageLength(bytes: Uint8Array): number {
  if (bytes.length < 16) return 0;
  const little = endianOf(bytes[0]);
  if (bytes[3] !== 1) throw new DBusWireError(`unsupported protocol version ${bytes[3]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
  const bodyLength = view.getUint32(4, little);
  const fieldsLength = view.getUint32(12, little);
  if (bodyLength > MAX_MESSAGE || fieldsLength > MAX_MESSAGE) {
    throw new DBusWireError("message too large");
  }
  const total = 16 + fieldsLength + ((8 - (fieldsLength % 8)) % 8) + bodyLength;
  if (total > MAX_MESSAGE) throw new DBusWireError("message too large");
  return bytes.length >= total ? total : 0;
}

function endianOf(byte: number): boolean {
  if (byte === 0x6c) return true; // 'l'
  if (byte === 0x42) return false; // 'B'
  throw new DBusWireError("bad endianness byte");
}

/** Decodes one complete message (as delimited by {@linkcode messageLength}). */
export function decodeMessage(bytes: Uint8Array, decodeBody = true): Message {
  const little = endianOf(bytes[0]);
  const r = new Reader(bytes, little);
  r.offset = 1;
  const type = r.u8();
  const flags = r.u8();
  r.u8(); // version, checked by messageLength
  const bodyLength = r.u32();
  const serial = r.u32();
  if (type < 1 || type > 4) throw new DBusWireError(`unknown message type ${type}`);
  if (serial === 0) throw new DBusWireError("serial 0");
  const message: Message = { type, flags, serial, body: [] };
  for (const [code, variant] of r.read(HEADER_FIELDS) as [number, Variant][]) {
    const name = FIELD_BY_CODE.get(code);
    if (name === undefined) continue; // unknown fields are ignored, as the specification says
    if (variant.signature !== FIELDS[name][1]) {
      throw new DBusWireError(`header field ${code} has type ${variant.signature}`);
    }
    (message as unknown as Record<string, unknown>)[name] = variant.value;
  }
  r.align(8);
  if (r.offset + bodyLength !== bytes.length) throw new DBusWireError("body length mismatch");
  // Every type takes at least one byte: a signature with no body, or a body with no signature,
  // is malformed.
  if ((bodyLength === 0) !== ((message.signature ?? "") === "")) {
    throw new DBusWireError("body and signature disagree");
  }
  if (decodeBody && bodyLength > 0) {
    const body = new Reader(bytes, little, 0, bytes.length);
    body.offset = r.offset;
    // Alignment in the body is relative to its start, which is 8-aligned in the message.
    for (const t of parseSignature(message.signature ?? "")) message.body.push(body.read(t));
    if (body.offset !== bytes.length) throw new DBusWireError("trailing bytes in body");
  }
  return message;
}
