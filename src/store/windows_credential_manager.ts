/**
 * The Windows backend: generic credentials in Windows Credential Manager (advapi32 through FFI,
 * `ffi/windows/advapi32.ts`), one per item, target `agent-runner-auth/<item>`, persisted for this
 * user on this computer (CRED_PERSIST_LOCAL_MACHINE). Control Panel › Credential Manager ›
 * Windows Credentials lists them.
 *
 * ## Values over the 2,560-byte blob cap (SPEC.md §4: chunked, never cut)
 *
 * A value is stored as its UTF-8 bytes. When they fit in one blob (and are not empty and do not
 * start with a NUL byte), the item's own credential holds them as they are. Otherwise that
 * credential holds a small header and the bytes go in numbered chunk credentials beside it:
 *
 *     agent-runner-auth/agent-runner-access-token      "\0agent-runner-auth chunks v1 slot=b
 *                                                        count=2 bytes=4700 sha256=…"
 *     agent-runner-auth/agent-runner-access-token/b1   bytes 0-2559
 *     agent-runner-auth/agent-runner-access-token/b2   bytes 2560-4699
 *
 * The header starts with a NUL byte, which a stored-as-is value never does, so the two cannot be
 * confused. Chunks live in one of two slots, `a` and `b`, and a write always fills the slot the
 * current header does NOT point to, then writes the header, then removes every other credential
 * under `<item>/` (found with CredEnumerateW, so chunks a crash left behind go too). So:
 * - a crash at any point leaves the header pointing at a complete set, old or new;
 * - a reader that runs during a write (cached `token` reads take no lock, SPEC.md §1.4) either
 *   reads the old set completely or finds a chunk gone or a checksum wrong, and then reads the
 *   header again; after {@linkcode READ_ATTEMPTS} tries it reports "corrupt", never a cut value;
 * - a shorter value later leaves no stale chunk behind.
 * Writes themselves are serialized by the lock file (only a refresh or login writes).
 *
 * Credential Manager calls are synchronous and local (see `advapi32.ts`), so they are not raced
 * against the store timeout. Over SSH Credential Manager has no credential set (1312): that is a
 * `StoreError("unavailable")` that says so.
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import {
  CRED_MAX_CREDENTIAL_BLOB_SIZE,
  type CredentialApi,
  CredentialManager,
} from "../../ffi/windows/advapi32.ts";
import { SERVICE, type StoreBackend, type TokenStore } from "./store.ts";

/** The first bytes of a chunk header; `slot=… count=… bytes=… sha256=…` follow. */
export const CHUNK_HEADER_MAGIC = "\0agent-runner-auth chunks v1";

/** At most this many chunks (160 KiB): a bound on what a corrupt header can make us read. */
export const MAX_CHUNKS = 64;

/** Reads of a chunked value that may race a writer before it is reported "corrupt". */
export const READ_ATTEMPTS = 3;

/** Pause before re-reading the header; a write's steps take milliseconds. */
const RETRY_DELAY_MS = 25;

/** Which set of chunk credentials a header points to. */
export type ChunkSlot = "a" | "b";

/** What an item's own credential says when the value is chunked. */
export interface ChunkHeader {
  slot: ChunkSlot;
  /** Number of chunks, 1..{@linkcode MAX_CHUNKS} (0 for the empty value). */
  count: number;
  /** Total UTF-8 length of the value. */
  bytes: number;
  /** Lower-case hex SHA-256 of the whole value, to detect a mix of two writes. */
  sha256: string;
}

const HEADER_PATTERN = new RegExp(
  "^\0agent-runner-auth chunks v1 slot=([ab]) count=(0|[1-9]\\d{0,2}) " +
    "bytes=(0|[1-9]\\d{0,8}) sha256=([0-9a-f]{64})$",
);

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const latin1 = new TextDecoder("latin1");

// ---------------------------------------------------------------------------------------------
// Pure encoding (unit-tested directly)
// ---------------------------------------------------------------------------------------------

/** Whether these UTF-8 bytes must go through a header rather than be stored as they are. */
export function needsChunking(bytes: Uint8Array): boolean {
  return bytes.length === 0 || bytes.length > CRED_MAX_CREDENTIAL_BLOB_SIZE || bytes[0] === 0;
}

/** Splits bytes into blobs of at most {@linkcode CRED_MAX_CREDENTIAL_BLOB_SIZE} (views). */
export function splitChunks(
  bytes: Uint8Array,
  size: number = CRED_MAX_CREDENTIAL_BLOB_SIZE,
): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) {
    chunks.push(bytes.subarray(offset, offset + size));
  }
  return chunks;
}

/** Concatenates chunks back into one buffer. */
export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}

/** The header blob for {@linkcode ChunkHeader}. */
export function formatHeader({ slot, count, bytes, sha256 }: ChunkHeader): Uint8Array {
  return encoder.encode(
    `${CHUNK_HEADER_MAGIC} slot=${slot} count=${count} bytes=${bytes} sha256=${sha256}`,
  );
}

/**
 * The header in `blob`, or `null` when `blob` is a value stored as is (it does not start with
 * NUL).
 *
 * @throws {StoreError} "corrupt" when it starts with NUL but is not a header this version reads.
 */
export function parseHeader(blob: Uint8Array, target: string): ChunkHeader | null {
  if (blob.length === 0 || blob[0] !== 0) return null;
  const match = HEADER_PATTERN.exec(latin1.decode(blob));
  const count = match ? Number(match[2]) : NaN;
  const bytes = match ? Number(match[3]) : NaN;
  const expected = Math.ceil(bytes / CRED_MAX_CREDENTIAL_BLOB_SIZE);
  if (!match || count > MAX_CHUNKS || count !== expected) {
    throw new StoreError(
      "corrupt",
      `Windows Credential Manager item ${target} holds a chunk header this version cannot ` +
        `read; sign in again, or delete the item with: cmdkey /delete:${target}`,
    );
  }
  return { slot: match[1] as ChunkSlot, count, bytes, sha256: match[4] };
}

/** The credential target of chunk `index` (1-based) in `slot` of the item at `base`. */
export function chunkTarget(base: string, slot: ChunkSlot, index: number): string {
  return `${base}/${slot}${index}`;
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/** Options for {@linkcode WindowsCredentialStore}. */
export interface WindowsCredentialStoreOptions {
  /** The Credential Manager to use; tests pass one over a fake advapi32. Default: the real one. */
  api?: CredentialApi;
  /**
   * The first part of every target name. Default {@linkcode SERVICE}; tests on a real machine
   * use their own, so a developer's tokens are never touched.
   */
  service?: string;
}

/**
 * A {@linkcode TokenStore} in Windows Credential Manager.
 *
 * Every method requires `--allow-ffi` (unscoped) on Windows and throws `StoreError`:
 * "unavailable" (off Windows; ERROR_NO_SUCH_LOGON_SESSION over SSH), "corrupt" (an item this
 * program did not write, or a chunked value that stays inconsistent), "failed" (any other Win32
 * error, with its number).
 */
export class WindowsCredentialStore implements TokenStore {
  readonly backend: StoreBackend = "windows-credential-manager";
  readonly #api: CredentialApi;
  readonly #service: string;

  constructor(options: WindowsCredentialStoreOptions = {}) {
    this.#api = options.api ?? new CredentialManager();
    this.#service = options.service ?? SERVICE;
    checkName(this.#service, "service");
  }

  async get(item: string): Promise<string | null> {
    const base = this.#target(item);
    for (let attempt = 1;; attempt++) {
      const blob = this.#api.read(base);
      if (blob === null) return null;
      const header = parseHeader(blob, base);
      if (header === null) return decode(blob, base);
      const value = await this.#readChunks(base, header);
      if (value !== null) return decode(value, base);
      if (attempt === READ_ATTEMPTS) {
        throw new StoreError(
          "corrupt",
          `Windows Credential Manager item ${base} is incomplete: its chunks are missing or do ` +
            `not match its header; sign in again, or delete it with: cmdkey /delete:${base}`,
        );
      }
      // A writer may be between its steps (chunks written, header not yet, or old chunks gone).
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS * attempt));
    }
  }

  async set(item: string, value: string): Promise<void> {
    if (!value.isWellFormed()) {
      throw new TypeError("A Windows Credential Manager value is not well-formed Unicode");
    }
    const base = this.#target(item);
    const bytes = encoder.encode(value);
    try {
      if (!needsChunking(bytes)) {
        this.#api.write(base, bytes, item);
        this.#removeChunks(base, new Set());
        return;
      }
      const chunks = splitChunks(bytes);
      if (chunks.length > MAX_CHUNKS) {
        throw new StoreError(
          "failed",
          `A value of ${bytes.length} bytes is too large for Windows Credential Manager ` +
            `(at most ${MAX_CHUNKS * CRED_MAX_CREDENTIAL_BLOB_SIZE} bytes)`,
        );
      }
      const slot = this.#freeSlot(base);
      const keep = new Set<string>();
      chunks.forEach((chunk, i) => {
        const target = chunkTarget(base, slot, i + 1);
        this.#api.write(target, chunk, item);
        keep.add(target.toLowerCase());
      });
      const sha256 = await sha256Hex(bytes);
      this.#api.write(
        base,
        formatHeader({ slot, count: chunks.length, bytes: bytes.length, sha256 }),
        item,
      );
      this.#removeChunks(base, keep);
    } finally {
      bytes.fill(0); // our copy of the secret
    }
  }

  // deno-lint-ignore require-await -- async so that every failure is a rejection, like the others
  async delete(item: string): Promise<boolean> {
    const base = this.#target(item);
    // The item first, so a concurrent reader sees "missing", not a header without its chunks.
    const existed = this.#api.delete(base);
    this.#removeChunks(base, new Set());
    return existed;
  }

  #target(item: string): string {
    checkName(item, "item");
    return `${this.#service}/${item}`;
  }

  /** The slot the current header does not use (`a` when there is no readable header). */
  #freeSlot(base: string): ChunkSlot {
    const current = this.#api.read(base);
    let header: ChunkHeader | null = null;
    try {
      header = current === null ? null : parseHeader(current, base);
    } catch (error) {
      if (!(error instanceof StoreError && error.failure === "corrupt")) throw error;
      // An unreadable header is replaced below; either slot is free then.
    } finally {
      current?.fill(0);
    }
    return header?.slot === "a" ? "b" : "a";
  }

  /** Reads and checks a chunked value; `null` when it is inconsistent (retry, or corrupt). */
  async #readChunks(base: string, header: ChunkHeader): Promise<Uint8Array | null> {
    const chunks: Uint8Array[] = [];
    for (let i = 1; i <= header.count; i++) {
      const chunk = this.#api.read(chunkTarget(base, header.slot, i));
      if (chunk === null) return null;
      chunks.push(chunk);
    }
    const value = joinChunks(chunks);
    for (const chunk of chunks) chunk.fill(0);
    if (value.length !== header.bytes || (await sha256Hex(value)) !== header.sha256) return null;
    return value;
  }

  /** Deletes every credential under `<base>/` except those in `keep` (lower-cased names). */
  #removeChunks(base: string, keep: ReadonlySet<string>): void {
    for (const target of this.#api.list(`${base}/`)) {
      if (!keep.has(target.toLowerCase())) this.#api.delete(target);
    }
  }
}

/** UTF-8 bytes back to the string; an item holding something else was not written by us. */
function decode(bytes: Uint8Array, target: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new StoreError(
      "corrupt",
      `Windows Credential Manager item ${target} does not hold UTF-8 text, so agent-runner-auth ` +
        `did not write it; delete it with: cmdkey /delete:${target}`,
    );
  } finally {
    bytes.fill(0);
  }
}

/**
 * Service and item names become target names and a CredEnumerateW filter: `/` separates chunks,
 * `*` is the filter's wildcard, NUL ends a wide string. Profile item names (`…@name`) are fine.
 */
function checkName(name: string, what: string): void {
  if (name === "" || /[/*\0]/.test(name)) {
    throw new TypeError(
      `A Windows Credential Manager ${what} name cannot be empty or contain /, *`,
    );
  }
}
