/**
 * The encrypted file store: tokens in files under the config directory, for containers and CI
 * where no keychain exists. It is **weaker than an OS keychain** (SPEC.md §4): the key sits
 * beside the data, so anyone who can read the directory as this user (or as root) can decrypt
 * the tokens; what it adds over plaintext is that a copied token file alone, a backup that
 * skipped the key, or a file moved to another machine reveals nothing. It is used only when
 * chosen by name (`AGENT_RUNNER_STORE=encrypted-file` or `"store": "encrypted-file"`), never as a
 * fallback, and it says so with a one-line warning on first use.
 *
 * Layout, in the config directory (`AGENT_RUNNER_CONFIG_DIR` moves it with the config):
 *
 *     store.key            0600  "ARAK" | version 1 | 32 random bytes (the per-install secret)
 *     tokens/              0700
 *     tokens/<item>.enc    0600  "ARAT" | version 1 | 12-byte IV | AES-256-GCM ciphertext+tag
 *
 * One file per item, not one file for all: every write is a whole-file atomic replace (temp +
 * fsync + rename), and a single shared file would need a read-modify-write that two profiles
 * (which hold different locks) could interleave and lose an update.
 *
 * Key: HKDF-SHA-256 (`@panva/hkdf`, imported on first use) of the 32-byte secret, salt = the
 * machine id (`/etc/machine-id`, else `/var/lib/dbus/machine-id`, else empty: macOS, Windows and
 * many containers have none), info = {@linkcode HKDF_INFO}. So the files and the key copied to
 * another machine do not decrypt. AAD = the file's 5-byte header plus the item name, so a file
 * renamed to another item, or a header edited to another version, fails authentication.
 *
 * Every failure to decrypt or parse is `StoreError("corrupt")` naming the file, never "no
 * token"; a file or key that others may read or write is refused (`chmod 600`). Unix modes are
 * not checked on Windows, where the config directory's ACL is all there is.
 *
 * File I/O is synchronous, on purpose: the first *async* file op of a Deno process spins up the
 * blocking thread pool, measured at 2–12 ms on the 2-core test machine against ~0.3 ms for the
 * same `stat` done synchronously, and the cached `token` path reads two small files. That is
 * also why there is no store timeout here: a synchronous call cannot be raced, and a config
 * directory on a hung file system already hangs the synchronous read of `config.json` before
 * the store is opened.
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import type { StoreBackend, TokenStore } from "./store.ts";

/** File name of the per-install secret, in the config directory. */
export const KEY_FILE = "store.key";
/** Folder of the item files, in the config directory. */
export const ITEMS_DIR = "tokens";
/** Format version written in both headers; a reader refuses any other. */
export const FORMAT_VERSION = 1;
/** HKDF `info`: names the product, the purpose and the format version. */
export const HKDF_INFO = "agent-runner-auth encrypted-file v1 AES-256-GCM token key";

const KEY_MAGIC = new Uint8Array([0x41, 0x52, 0x41, 0x4b]); // "ARAK"
const ITEM_MAGIC = new Uint8Array([0x41, 0x52, 0x41, 0x54]); // "ARAT"
const HEADER_LENGTH = 5; // magic + version
const SECRET_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
/** Far above a 16 KB token; a bigger file is not ours. */
const MAX_FILE_BYTES = 1024 * 1024;
const MACHINE_ID_FILES = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/** Item names become file names: no separators, no leading dot. */
const ITEM_NAME = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$/;

const encoder = new TextEncoder();

/** Bytes backed by a plain `ArrayBuffer`, as WebCrypto wants them. */
type Bytes = Uint8Array<ArrayBuffer>;
/** `fatal` so damaged plaintext is reported, `ignoreBOM` so a leading BOM is kept. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Options for {@linkcode EncryptedFileStore}. */
export interface EncryptedFileStoreOptions {
  /** The directory holding {@linkcode KEY_FILE} and {@linkcode ITEMS_DIR}: the config dir. */
  dir: string;
  /**
   * The HKDF salt source. Default: read the machine id files. A string (even empty) is used as
   * is: tests use it to simulate a different machine.
   */
  machineId?: string;
  /**
   * Called once, on the first get/set/delete/assertUsable of this instance, with
   * {@linkcode EncryptedFileStore.warning}. Default: the line on stderr, prefixed like every
   * CLI message. The CLI may pass its own (e.g. to also log it, or to print it only on login).
   */
  onWarning?: (line: string) => void;
}

/**
 * A {@linkcode TokenStore} in AES-256-GCM encrypted files; see the module doc for the format.
 *
 * Every method needs `--allow-read` and `--allow-write` on the directory (and `--allow-read`
 * of `/etc/machine-id` and `/var/lib/dbus/machine-id`); `set` also creates the key on first
 * use. Throws `StoreError`: "corrupt" (foreign, damaged or undecryptable data, a missing key
 * beside existing items), "failed" (loose permissions, I/O errors).
 */
export class EncryptedFileStore implements TokenStore {
  readonly backend: StoreBackend = "encrypted-file";
  /** The one-line warning this store gives on first use (it names the directory). */
  readonly warning: string;
  /** Where the per-install secret lives. */
  readonly keyPath: string;
  /** Where the item files live. */
  readonly itemsDir: string;
  readonly #dir: string;
  readonly #machineId: string | undefined;
  readonly #onWarning: (line: string) => void;
  #warned = false;
  #key: Promise<CryptoKey> | null = null;

  constructor(options: EncryptedFileStoreOptions) {
    const sep = Deno.build.os === "windows" ? "\\" : "/";
    this.#dir = options.dir.replace(/[\\/]+$/, "");
    this.keyPath = `${this.#dir}${sep}${KEY_FILE}`;
    this.itemsDir = `${this.#dir}${sep}${ITEMS_DIR}`;
    this.#machineId = options.machineId;
    this.#onWarning = options.onWarning ?? warnOnStderr;
    this.warning = `Tokens are kept in an encrypted file in ${this.#dir} ` +
      `(store "encrypted-file"), which is weaker than an OS keychain: anyone who can read ` +
      `that directory as you, or as root, can decrypt them`;
  }

  /** The item's file. Throws `TypeError` for a name that is not a safe file name. */
  itemPath(item: string): string {
    if (!ITEM_NAME.test(item) || item.includes("..")) {
      throw new TypeError(`Not a valid store item name: ${JSON.stringify(item.slice(0, 80))}`);
    }
    return `${this.itemsDir}${Deno.build.os === "windows" ? "\\" : "/"}${item}.enc`;
  }

  async get(item: string): Promise<string | null> {
    const path = this.itemPath(item);
    return await this.#once(async () => {
      checkPrivateDir(this.itemsDir);
      const data = readPrivateFile(path);
      if (data === null) return null;
      const { iv, sealed } = parseItemFile(data, path);
      const key = await this.#loadKey(false);
      if (key === null) {
        throw new StoreError(
          "corrupt",
          `${path} cannot be decrypted: its key file ${this.keyPath} is missing; remove ${this.itemsDir} and sign in again`,
        );
      }
      let plain: ArrayBuffer;
      try {
        plain = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv, additionalData: aadOf(item), tagLength: TAG_LENGTH * 8 },
          key,
          sealed,
        );
      } catch {
        throw new StoreError(
          "corrupt",
          `${path} cannot be decrypted with ${this.keyPath} (the file is damaged or was ` +
            `copied from another item or machine, the key was replaced, or the machine id ` +
            `changed); remove it and sign in again`,
        );
      }
      try {
        return strictUtf8.decode(plain);
      } catch {
        throw new StoreError("corrupt", `${path} decrypted to bytes that are not UTF-8 text`);
      }
    });
  }

  async set(item: string, value: string): Promise<void> {
    const path = this.itemPath(item);
    if (!value.isWellFormed()) {
      // TextEncoder would silently turn a lone surrogate into U+FFFD: refuse rather than change.
      throw new TypeError("The value contains a lone UTF-16 surrogate and cannot be stored as is");
    }
    return await this.#once(async () => {
      ensurePrivateDir(this.#dir, false);
      ensurePrivateDir(this.itemsDir, true);
      const key = (await this.#loadKey(true))!;
      const iv = crypto.getRandomValues(new Uint8Array(IV_LENGTH));
      const sealed = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: aadOf(item), tagLength: TAG_LENGTH * 8 },
          key,
          encoder.encode(value),
        ),
      );
      writePrivateFileAtomic(path, concat(itemHeader(), iv, sealed));
    });
  }

  async delete(item: string): Promise<boolean> {
    const path = this.itemPath(item);
    return await this.#once(() => {
      try {
        Deno.removeSync(path);
        return true;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return false;
        throw ioFailure("remove", path, error);
      }
    });
  }

  /** Nothing locks a file store; but a loose or foreign key is reported here too. */
  assertUsable(): Promise<void> {
    return this.#once(async () => {
      checkPrivateDir(this.itemsDir);
      await this.#loadKey(false);
    });
  }

  /** Warns once (the first use of this instance), then runs `action`. */
  async #once<T>(action: () => T | Promise<T>): Promise<T> {
    if (!this.#warned) {
      this.#warned = true;
      this.#onWarning(this.warning);
    }
    return await action();
  }

  /**
   * The AES key, derived once per instance. `create`: make the per-install secret when there is
   * none. Without `create`, a missing secret is `null`. A failure is not cached.
   */
  async #loadKey(create: boolean): Promise<CryptoKey | null> {
    if (this.#key) return await this.#key;
    let secret = readKeyFile(this.keyPath);
    if (secret === null) {
      if (!create) return null;
      secret = createKeyFile(this.keyPath);
    }
    const pending = deriveKey(secret, this.#machineId ?? readMachineId());
    this.#key = pending;
    pending.catch(() => this.#key = null);
    return await pending;
  }
}

/**
 * HKDF-SHA-256 → a non-extractable AES-256-GCM key. `@panva/hkdf` is imported here, on first
 * use, so the other stores' cached `token` path never wakes the npm layer (SPEC.md §8).
 */
export async function deriveKey(secret: Uint8Array, machineId: string): Promise<CryptoKey> {
  const { hkdf } = await import("@panva/hkdf");
  const raw = await hkdf("sha256", secret, encoder.encode(machineId), HKDF_INFO, 32);
  return await crypto.subtle.importKey("raw", new Uint8Array(raw), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/**
 * The machine id used as HKDF salt, trimmed; `""` where there is none. Needs `--allow-read` of
 * the two files.
 */
export function readMachineId(): string {
  if (Deno.build.os === "windows") return "";
  for (const file of MACHINE_ID_FILES) {
    try {
      const id = Deno.readTextFileSync(file).trim();
      if (id !== "") return id;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw ioFailure("read", file, error);
    }
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

function itemHeader(): Bytes {
  return concat(ITEM_MAGIC, new Uint8Array([FORMAT_VERSION]));
}

/** AAD: the header (so a version byte cannot be swapped) and the item name. */
function aadOf(item: string): Bytes {
  return concat(itemHeader(), encoder.encode(item));
}

function parseItemFile(
  data: Bytes,
  path: string,
): { iv: Bytes; sealed: Bytes } {
  if (data.length < HEADER_LENGTH || !startsWith(data, ITEM_MAGIC)) {
    throw new StoreError(
      "corrupt",
      `${path} is not an agent-runner-auth encrypted token file; remove it and sign in again`,
    );
  }
  if (data[4] !== FORMAT_VERSION) {
    throw new StoreError(
      "corrupt",
      `${path} has format version ${
        data[4]
      }, which this agent-runner-auth does not read (it reads ${FORMAT_VERSION}); upgrade it, or remove the file and sign in again`,
    );
  }
  if (data.length < HEADER_LENGTH + IV_LENGTH + TAG_LENGTH) {
    throw new StoreError("corrupt", `${path} is truncated; remove it and sign in again`);
  }
  return {
    iv: data.subarray(HEADER_LENGTH, HEADER_LENGTH + IV_LENGTH),
    sealed: data.subarray(HEADER_LENGTH + IV_LENGTH),
  };
}

/** The 32-byte secret from the key file, or `null` when there is no key file. */
function readKeyFile(path: string): Bytes | null {
  const data = readPrivateFile(path);
  if (data === null) return null;
  if (
    data.length !== HEADER_LENGTH + SECRET_LENGTH || !startsWith(data, KEY_MAGIC) ||
    data[4] !== FORMAT_VERSION
  ) {
    throw new StoreError(
      "corrupt",
      `${path} is not an agent-runner-auth store key; the encrypted tokens beside it cannot be read: remove both and sign in again`,
    );
  }
  return data.slice(HEADER_LENGTH);
}

/**
 * Creates the key file without ever replacing one: written to a temp file, then published with
 * a hard link, which fails if the name exists. Two first writers (two profiles signing in at
 * once) thus agree on the winner's key, which is read back. Where hard links are not
 * supported, a rename is used only if no key exists yet.
 */
function createKeyFile(path: string): Bytes {
  const secret = crypto.getRandomValues(new Uint8Array(SECRET_LENGTH));
  const tmp = tempName(path);
  writeNewFile(tmp, concat(KEY_MAGIC, new Uint8Array([FORMAT_VERSION]), secret));
  try {
    Deno.linkSync(tmp, path);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      try {
        if (readPrivateFile(path) === null) Deno.renameSync(tmp, path);
      } catch (renameError) {
        throw ioFailure("create", path, renameError);
      }
    }
  } finally {
    removeQuietly(tmp);
  }
  const winner = readKeyFile(path);
  if (winner === null) throw new StoreError("failed", `Could not create ${path}`);
  return winner;
}

/**
 * The file's bytes, or `null` if it does not exist. Refuses a file that group or others may
 * read or write: checked on the open descriptor, so the file cannot be swapped in between.
 */
function readPrivateFile(path: string): Bytes | null {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw ioFailure("read", path, error);
  }
  try {
    const info = file.statSync();
    if (!info.isFile) throw new StoreError("corrupt", `${path} is not a regular file`);
    refuseLoose(info, path, 0o600);
    if (info.size > MAX_FILE_BYTES) {
      throw new StoreError("corrupt", `${path} is ${info.size} bytes, too large to be ours`);
    }
    const data = new Uint8Array(info.size);
    let off = 0;
    while (off < data.length) {
      const n = file.readSync(data.subarray(off));
      if (n === null) break;
      off += n;
    }
    return data.subarray(0, off);
  } catch (error) {
    throw ioFailure("read", path, error);
  } finally {
    file.close();
  }
}

/** A new file (never an existing one), mode 0600, written fully and fsynced. */
function writeNewFile(path: string, data: Uint8Array): void {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    throw ioFailure("create", path, error);
  }
  try {
    let written = 0;
    while (written < data.length) written += file.writeSync(data.subarray(written));
    file.syncSync();
  } catch (error) {
    file.close();
    removeQuietly(path);
    throw ioFailure("write", path, error);
  }
  file.close();
}

/** temp (0600) + fsync + rename, then an fsync of the directory so the rename is durable. */
function writePrivateFileAtomic(path: string, data: Uint8Array): void {
  const tmp = tempName(path);
  writeNewFile(tmp, data);
  try {
    Deno.renameSync(tmp, path);
  } catch (error) {
    removeQuietly(tmp);
    throw ioFailure("replace", path, error);
  }
  if (Deno.build.os !== "windows") {
    try {
      const dir = Deno.openSync(path.replace(/\/[^/]*$/, ""), { read: true });
      try {
        dir.syncSync();
      } finally {
        dir.close();
      }
    } catch {
      // Some file systems refuse fsync on a directory; the rename itself is still atomic.
    }
  }
}

/** Creates `dir` 0700 when missing; `strict`: refuse an existing one others may enter. */
function ensurePrivateDir(dir: string, strict: boolean): void {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw ioFailure("create", dir, error);
  }
  if (strict) checkPrivateDir(dir);
}

/** Refuses an items folder that group or others may read, enter or write (missing is fine). */
function checkPrivateDir(dir: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw ioFailure("read", dir, error);
  }
  refuseLoose(info, dir, 0o700);
}

function refuseLoose(info: Deno.FileInfo, path: string, wanted: number): void {
  if (info.mode === null) return; // Windows: no Unix modes
  const mode = info.mode & 0o777;
  if ((mode & 0o077) === 0) return;
  throw new StoreError(
    "failed",
    `${path} is open to other users (mode ${mode.toString(8).padStart(4, "0")}); the ` +
      `encrypted-file store refuses it: run \`chmod ${wanted.toString(8)} ${path}\``,
  );
}

function ioFailure(what: string, path: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const why = error instanceof Error ? error.message : String(error);
  return new StoreError("failed", `Cannot ${what} ${path}: ${why.replace(/\s*\n\s*/g, " ")}`);
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone
  }
}

function tempName(path: string): string {
  return `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
}

function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((b, i) => data[i] === b);
}

function concat(...parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function warnOnStderr(line: string): void {
  try {
    const bytes = encoder.encode(`agent-runner-auth: ${line}\n`);
    let off = 0;
    while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
  } catch {
    // stderr closed: nothing better to do
  }
}
