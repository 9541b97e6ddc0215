/**
 * The `pass` backend (the standard Unix password manager; SPEC.md §4 names it the Linux
 * fallback when no Secret Service answers). Every call runs the `pass` script as a child:
 *
 *     set     pass insert -m -f agent-runner-auth/<item>.tmp-<random>    (the value on stdin,
 *             never argv), then renamed onto agent-runner-auth/<item>   (`pass mv -f` in git)
 *     get     pass show agent-runner-auth/<item>
 *     delete  pass rm -f agent-runner-auth/<item>
 *
 * so `pass show agent-runner-auth/agent-runner-access-token` reads an item by hand.
 *
 * The contract this relies on (research deno-ffi.md §2.8, re-verified on pass 1.7.4 with gpg
 * 2.2.40 by `test/store_pass_test.ts`): `insert -m` stores the bytes of stdin verbatim up to EOF
 * (no newline added, none removed: a value ending in "\n" or spanning lines round-trips), and
 * `show` prints them back exactly (pass 1.7 pipes gpg through base64 precisely so that shell
 * command substitution cannot eat trailing newlines). A missing entry is exit 1 with
 * "Error: <name> is not in the password store." on stderr; every other failure is an error,
 * never "no token". `show` of a *folder* prints a tree and exits 0, which is why every item is a
 * leaf under one folder and item names are restricted to a safe alphabet.
 *
 * Why a write goes through a temporary entry (issue 11 #6): gpg opens its output with `O_TRUNC`
 * and writes in place (strace of `pass insert`), so a write killed half-way (the store timeout,
 * a closed terminal) would leave a truncated entry: after a refresh with rotation, the only
 * copy of the new refresh token gone and the old one too, and meanwhile a lock-free cached read
 * could find half a file. A `rename(2)` within the store (what `pass mv` does too) means a
 * reader sees the old entry or the new one, whole. A temporary entry left by a killed write is removed by a
 * later write of the same item once it is a minute old.
 *
 * Why the child environment gets `PASSWORD_STORE_GPG_OPTS="--batch --pinentry-mode error …"`:
 * a passphrase-protected key whose passphrase gpg-agent has not cached makes gpg ask through
 * pinentry. Measured with gpg 2.2.40: `--batch` alone does NOT stop that (gpg-agent still starts
 * pinentry and the call hangs until killed); `--pinentry-mode error` makes gpg fail at once
 * ("decryption failed: No secret key"). A pinentry would be wrong here anyway: `token` runs
 * inside Claude Code's TUI, where a curses pinentry on /dev/tty would draw over the session and
 * a GUI one cannot be answered within the store timeout. The user's own
 * `PASSWORD_STORE_GPG_OPTS` come after ours, so `--pinentry-mode ask` there opts back in (with a
 * larger `AGENT_RUNNER_STORE_TIMEOUT_MS`).
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import { SERVICE, type StoreBackend, type TokenStore } from "./store.ts";
import { boundStoreCall, storeTimeoutMs } from "../../ffi/timeout.ts";

/** The pass folder every item lives in: `agent-runner-auth/<item>`. */
export const PASS_FOLDER = SERVICE;

/** What we put in front of the user's `PASSWORD_STORE_GPG_OPTS` (see the module doc). */
export const PASS_GPG_OPTS = "--batch --pinentry-mode error";

/** Whether pass can be used here; `why` and `fix` are one-line fragments for error messages. */
export type PassAvailability =
  | { ok: true; storeDir: string }
  | { ok: false; why: string; fix: string };

/** Options for {@linkcode PassStore}. */
export interface PassStoreOptions {
  /** The pass executable: a name looked up on `PATH` (default `"pass"`) or a path. */
  command?: string;
  /**
   * Variables added to the child's (inherited) environment and used by
   * {@linkcode PassStore.availability}: `PASSWORD_STORE_DIR`, `GNUPGHOME`, `PATH`, `HOME`.
   * Tests point these at a throw-away store; the CLI passes none.
   */
  env?: Record<string, string>;
  /** Bound on each call; default `AGENT_RUNNER_STORE_TIMEOUT_MS` (3 s), read at call time. */
  timeoutMs?: number;
}

/** What a temporary entry adds to its item's name: `<item>.tmp-<8 hex>`. */
export const TEMP_MARK = ".tmp-";
/** A temporary entry this old is a killed write's, not one in flight. */
const LEFTOVER_AGE_MS = 60_000;

/** Item names become file names in the password store: no `/`, no leading dot, no spaces. */
const ITEM_NAME = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$/;

const encoder = new TextEncoder();
/** `fatal` so a foreign entry that is not UTF-8 is reported, `ignoreBOM` so a BOM is kept. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A {@linkcode TokenStore} in the user's password store.
 *
 * Every method needs `--allow-run` (pass; unscoped or `--allow-run=pass`, plus the kill of its
 * process group on timeout) and `--allow-env` (`AGENT_RUNNER_STORE_TIMEOUT_MS`, and the child
 * inherits the environment); {@linkcode PassStore.assertUsable} also `--allow-read` (the
 * store's `.gpg-id`). Each call is bounded by the store timeout: the child and everything it
 * started (gpg) is killed and `StoreError("timeout")` thrown. Errors are one line and never
 * contain the value.
 */
export class PassStore implements TokenStore {
  readonly backend: StoreBackend = "pass";
  readonly #command: string;
  readonly #env: Record<string, string>;
  readonly #timeoutMs: number | undefined;

  constructor(options: PassStoreOptions = {}) {
    this.#command = options.command ?? "pass";
    this.#env = options.env ?? {};
    this.#timeoutMs = options.timeoutMs;
  }

  async get(item: string): Promise<string | null> {
    const entry = entryName(item);
    const r = await this.#run("show", [entry]);
    if (r.code !== 0) {
      if (isMissing(r.stderr)) return null;
      throw this.#failure("show", entry, r);
    }
    try {
      return strictUtf8.decode(r.stdout);
    } catch {
      throw new StoreError(
        "corrupt",
        `The pass entry ${entry} is not UTF-8 text, so agent-runner-auth did not write it; remove it with \`pass rm ${entry}\` and sign in again`,
      );
    }
  }

  async set(item: string, value: string): Promise<void> {
    const entry = entryName(item);
    if (!value.isWellFormed()) {
      // TextEncoder would silently turn a lone surrogate into U+FFFD: refuse rather than change.
      throw new TypeError("The value contains a lone UTF-16 surrogate and cannot be stored as is");
    }
    const temp = `${entry}${TEMP_MARK}${crypto.randomUUID().slice(0, 8)}`;
    try {
      const r = await this.#run("insert", ["-m", "-f", temp], value);
      if (r.code !== 0) throw this.#failure("insert", entry, r);
      await this.#moveIntoPlace(temp, entry);
    } catch (error) {
      await this.#run("rm", ["-f", temp]).catch(() => {}); // best effort; the next write retries
      throw error;
    }
    await this.#removeLeftovers(item);
  }

  /**
   * Renames the temporary entry onto `entry` (module doc). Both live in the same folder, so
   * they share its `.gpg-id` recipients and nothing needs re-encrypting: a plain `rename(2)` of
   * the `.gpg` file does it. `pass mv -f` would do the same `mv` but then runs gpg three more
   * times to check the recipients (over 3 s on a loaded machine, measured), so it is used only
   * where pass must also record the move: a store kept in git.
   */
  async #moveIntoPlace(temp: string, entry: string): Promise<void> {
    const found = this.availability();
    const storeDir = found.ok ? found.storeDir : null;
    let git = true;
    try {
      if (storeDir) git = Deno.statSync(`${storeDir}/.git`).isDirectory;
    } catch {
      git = false;
    }
    if (!storeDir || git) {
      const m = await this.#run("mv", ["-f", temp, entry]);
      if (m.code !== 0) throw this.#failure("mv", entry, m);
      return;
    }
    try {
      await Deno.rename(`${storeDir}/${temp}.gpg`, `${storeDir}/${entry}.gpg`);
    } catch (error) {
      const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
      throw new StoreError("failed", `Cannot move the new pass entry ${entry} into place: ${why}`);
    }
  }

  /**
   * Temporary entries of `item` that a killed write left behind (module doc), found in the
   * store directory and removed through `pass rm`. Best effort: a failure here is not the
   * write's failure.
   */
  async #removeLeftovers(item: string): Promise<void> {
    const found = this.availability();
    if (!found.ok) return;
    try {
      const folder = `${found.storeDir}/${PASS_FOLDER}`;
      for (const e of Deno.readDirSync(folder)) {
        if (!e.isFile || !e.name.startsWith(`${item}${TEMP_MARK}`)) continue;
        // A younger one may be another writer's, in flight.
        const age = Date.now() - (Deno.statSync(`${folder}/${e.name}`).mtime?.getTime() ?? 0);
        if (age < LEFTOVER_AGE_MS) continue;
        await this.#run("rm", ["-f", `${PASS_FOLDER}/${e.name.replace(/\.gpg$/, "")}`]);
      }
    } catch {
      // unreadable folder, a timeout: the entries stay until the next write
    }
  }

  async delete(item: string): Promise<boolean> {
    const entry = entryName(item);
    const r = await this.#run("rm", ["-f", entry]);
    if (r.code === 0) return true;
    if (isMissing(r.stderr)) return false;
    throw this.#failure("rm", entry, r);
  }

  /**
   * An uninitialized store reads as "not in the password store", like an empty one, so when
   * every item is missing check that the store exists and `pass` is installed.
   */
  assertUsable(): Promise<void> {
    const found = this.availability();
    if (!found.ok) {
      return Promise.reject(
        new StoreError("unavailable", `The pass store is unavailable: ${found.why}; ${found.fix}`),
      );
    }
    return Promise.resolve();
  }

  /** {@linkcode passAvailability} for this store's command and environment. */
  availability(): PassAvailability {
    return passAvailability((name) => this.#env[name] ?? Deno.env.get(name), this.#command);
  }

  /**
   * Runs `pass <verb> <args>` in its own process group (so a timeout can kill gpg with it),
   * with the value, if any, written to stdin and stdin closed.
   */
  async #run(verb: string, args: string[], input?: string): Promise<PassRun> {
    const timeoutMs = this.#timeoutMs ?? storeTimeoutMs();
    const userOpts = this.#env.PASSWORD_STORE_GPG_OPTS ?? Deno.env.get("PASSWORD_STORE_GPG_OPTS");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#command, {
        args: [verb, ...args],
        env: {
          ...this.#env,
          PASSWORD_STORE_GPG_OPTS: userOpts ? `${PASS_GPG_OPTS} ${userOpts}` : PASS_GPG_OPTS,
          // gpg's messages in English, so the classification below can read them.
          LC_ALL: "C",
        },
        stdin: input === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        // A process group of its own: on timeout the whole group (pass, gpg) is killed.
        detached: Deno.build.os !== "windows",
      }).spawn();
    } catch (error) {
      throw spawnFailure(this.#command, error);
    }
    const finished = (async (): Promise<PassRun> => {
      if (input !== undefined) {
        const writer = child.stdin.getWriter();
        try {
          await writer.write(encoder.encode(input));
          await writer.close();
        } catch {
          // pass exited before reading all of stdin: its exit status and stderr say why.
        }
      }
      const out = await child.output();
      return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
    })();
    return await boundStoreCall(finished, timeoutMs, () => {
      killGroup(child);
      return new StoreError(
        "timeout",
        `pass did not answer within ${timeoutMs} ms (${verb} ${args.at(-1)}): gpg may be ` +
          `waiting for a passphrase or a smartcard, or gpg-agent is hung; ` +
          `AGENT_RUNNER_STORE_TIMEOUT_MS sets the limit`,
      );
    });
  }

  #failure(verb: string, entry: string, r: PassRun): StoreError {
    const said = oneLine(r.stderr);
    if (/You must run:|before you may use the password store/.test(r.stderr)) {
      const found = this.availability();
      const why = found.ok ? `the password store ${found.storeDir} is not initialized` : found.why;
      return new StoreError(
        "unavailable",
        `The pass store is unavailable: ${why}; run \`pass init <gpg-id>\``,
      );
    }
    if (
      verb === "show" &&
      /No secret key|pinentry|Inappropriate ioctl|[Pp]assphrase|[Cc]ancel/.test(r.stderr)
    ) {
      return new StoreError(
        "locked",
        `gpg could not decrypt the pass entry ${entry} (${said}): the key's passphrase is not ` +
          `cached in gpg-agent and is not asked for here, or the secret key is missing; ` +
          `unlock it in a terminal with \`pass show ${entry} >/dev/null\``,
      );
    }
    return new StoreError(
      "failed",
      `pass ${verb} ${entry} failed (exit ${r.code}): ${said || "no message"}`,
    );
  }
}

/**
 * Whether pass can work here without running it (no child process: cheap enough for the
 * selector's `auto` and for a pinned store's open): `command` is found (on `PATH` when it has
 * no slash), `gpg` or `gpg2` is on `PATH`, and the store (`PASSWORD_STORE_DIR`, else
 * `~/.password-store`) has a `.gpg-id`, which `pass init` writes.
 *
 * Needs `--allow-env` (PATH, PASSWORD_STORE_DIR, HOME) and `--allow-read`.
 */
export function passAvailability(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
  command = "pass",
): PassAvailability {
  if (Deno.build.os === "windows") {
    return { ok: false, why: "pass does not run on Windows", fix: "choose another store" };
  }
  const path = getEnv("PATH") ?? "";
  const install = "install pass and gnupg (apt install pass) and run `pass init <gpg-id>`";
  if (!(command.includes("/") ? isExecutable(command) : findOnPath(command, path))) {
    return { ok: false, why: `${command} is not installed`, fix: install };
  }
  if (!findOnPath("gpg", path) && !findOnPath("gpg2", path)) {
    return { ok: false, why: "gpg is not installed", fix: install };
  }
  const home = getEnv("HOME");
  const storeDir = getEnv("PASSWORD_STORE_DIR") || (home ? `${home}/.password-store` : "");
  if (!storeDir) {
    return { ok: false, why: "neither PASSWORD_STORE_DIR nor HOME is set", fix: "set HOME" };
  }
  try {
    if (Deno.statSync(`${storeDir}/.gpg-id`).isFile) return { ok: true, storeDir };
  } catch {
    // not initialized (or unreadable): reported below
  }
  return {
    ok: false,
    why: `the password store ${storeDir} is not initialized`,
    fix: "run `pass init <gpg-id>` (or set PASSWORD_STORE_DIR to an initialized store)",
  };
}

/** `agent-runner-auth/<item>`; throws `TypeError` for a name that is not a safe leaf. */
export function entryName(item: string): string {
  if (!ITEM_NAME.test(item) || item.includes("..")) {
    throw new TypeError(`Not a valid store item name: ${JSON.stringify(item.slice(0, 80))}`);
  }
  return `${PASS_FOLDER}/${item}`;
}

interface PassRun {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

function isMissing(stderr: string): boolean {
  return /is not in the password store\./.test(stderr);
}

/** Kills the child's process group (pass and the gpg it runs), or at least the child. */
function killGroup(child: Deno.ChildProcess): void {
  try {
    if (Deno.build.os !== "windows") {
      Deno.kill(-child.pid, "SIGKILL");
      return;
    }
  } catch {
    // the group is gone already, or we may not signal it: fall back to the child itself
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // already exited
  }
}

function spawnFailure(command: string, error: unknown): StoreError {
  if (error instanceof Deno.errors.NotFound) {
    return new StoreError(
      "unavailable",
      `The pass store is unavailable: ${command} is not installed; install pass and gnupg (apt install pass) and run \`pass init <gpg-id>\``,
    );
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return new StoreError("failed", `Not allowed to run ${command} (needs --allow-run)`);
  }
  const why = error instanceof Error ? error.message : String(error);
  return new StoreError("failed", `Cannot run ${command}: ${oneLine(why)}`);
}

/** pass/gpg output as one line: colours stripped, lines joined with "; ", length capped. */
function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
  const joined = plain.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "").join("; ");
  return joined.length > 300 ? `${joined.slice(0, 297)}...` : joined;
}

function findOnPath(name: string, path: string): string | null {
  for (const dir of path.split(":")) {
    if (dir && isExecutable(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    const info = Deno.statSync(file);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}
