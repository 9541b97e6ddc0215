/**
 * Release archives written in TypeScript, so packaging needs no `tar`/`zip` on the build
 * machine and produces the same bytes for the same inputs (fixed owner `root:root`, one mtime,
 * entries in the given order): `.tar.gz` (POSIX ustar, gzip) for Linux and macOS, `.zip`
 * (deflate) for Windows. Entries are flat files: archives hold the binary at the top level,
 * where the install script, Homebrew's `bin.install` and winget's `RelativeFilePath` expect it.
 *
 * @module
 */

/** One file in an archive. */
export interface ArchiveEntry {
  /** Path inside the archive (ASCII, under 100 bytes). */
  name: string;
  data: Uint8Array;
  /** Unix mode bits, e.g. `0o755` for the binary, `0o644` for docs. */
  mode: number;
}

const encoder = new TextEncoder();

async function compress(
  data: Uint8Array,
  format: CompressionFormat,
): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9._+-][A-Za-z0-9._+/-]*$/.test(name) || name.length >= 100) {
    throw new Error(`Archive entry name not supported: "${name}"`);
  }
}

/** A ustar header field: octal digits, zero-padded, NUL-terminated. */
function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(entry: ArchiveEntry, mtime: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (offset: number, text: string) => h.set(encoder.encode(text), offset);
  put(0, entry.name);
  put(100, octal(entry.mode & 0o7777, 8));
  put(108, octal(0, 8)); // uid
  put(116, octal(0, 8)); // gid
  put(124, octal(entry.data.length, 12));
  put(136, octal(mtime, 12));
  put(148, "        "); // checksum is computed with its own field as spaces
  put(156, "0"); // regular file
  put(257, "ustar\0");
  put(263, "00");
  put(265, "root");
  put(297, "root");
  const sum = h.reduce((n, b) => n + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A gzip-compressed ustar archive of `entries`, every file stamped `mtime`. */
export async function tarGz(
  entries: ArchiveEntry[],
  mtime: Date,
): Promise<Uint8Array<ArrayBuffer>> {
  const seconds = Math.floor(mtime.getTime() / 1000);
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    checkName(entry.name);
    parts.push(tarHeader(entry, seconds), entry.data);
    const pad = (512 - (entry.data.length % 512)) % 512;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(1024)); // two zero blocks end the archive
  return await compress(concat(parts), "gzip");
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE), as zip stores it. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** MS-DOS date and time (local fields of a UTC date; zip has no time zone). */
function dosDateTime(d: Date): { date: number; time: number } {
  const year = Math.max(1980, d.getUTCFullYear());
  return {
    date: ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

/** A zip archive (deflate, no zip64: every entry under 4 GiB) of `entries`. */
export async function zip(entries: ArchiveEntry[], mtime: Date): Promise<Uint8Array<ArrayBuffer>> {
  const { date, time } = dosDateTime(mtime);
  const locals: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const entry of entries) {
    checkName(entry.name);
    const name = encoder.encode(entry.name);
    const packed = await compress(entry.data, "deflate-raw");
    const crc = crc32(entry.data);

    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true); // version needed: 2.0 (deflate)
    local.setUint16(6, 0, true); // flags
    local.setUint16(8, 8, true); // deflate
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, packed.length, true);
    local.setUint32(22, entry.data.length, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true);
    locals.push(new Uint8Array(local.buffer), name, packed);

    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(4, (3 << 8) | 20, true); // made by: Unix, so unzip restores the mode bits
    cd.setUint16(6, 20, true);
    cd.setUint16(8, 0, true);
    cd.setUint16(10, 8, true);
    cd.setUint16(12, time, true);
    cd.setUint16(14, date, true);
    cd.setUint32(16, crc, true);
    cd.setUint32(20, packed.length, true);
    cd.setUint32(24, entry.data.length, true);
    cd.setUint16(28, name.length, true);
    cd.setUint32(38, ((0o100000 | (entry.mode & 0o7777)) << 16) >>> 0, true); // regular file
    cd.setUint32(42, offset, true);
    central.push(new Uint8Array(cd.buffer), name);

    offset += 30 + name.length + packed.length;
  }
  const cdBytes = concat(central);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, cdBytes.length, true);
  end.setUint32(16, offset, true);
  return concat([...locals, cdBytes, new Uint8Array(end.buffer)]);
}
