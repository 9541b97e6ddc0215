/**
 * The macOS backend: generic-password items in the user's login keychain through the Security
 * framework (`ffi/darwin/security.ts`), service `agent-runner-auth`, account = the item name, data
 * = the value's UTF-8 bytes. `security find-generic-password -s agent-runner-auth -a
 * agent-runner-access-token` shows one; Keychain Access lists them under that name.
 *
 * A write updates the existing item in place (SecItemUpdate) and only adds one when there is none:
 * the item keeps its access list, so the user's "Always Allow" survives every token refresh
 * (deleting and re-adding would reset it and prompt again). Keychain items have no practical size
 * limit for a token, so nothing is chunked here.
 *
 * An empty answer is a real "no such item": the keychain's item attributes can be searched while
 * it is locked, and reading an item's data from a locked keychain either shows the unlock dialog
 * or fails with errSecInteractionNotAllowed, which is a `StoreError("locked")`, never `null`. So
 * unlike the Secret Service there is no `assertUsable` probe.
 *
 * Keychain dialogs (unlock, "allow access" for a new or upgraded binary) get human time where
 * they can be shown, and a call that waits a second for one says so once, on stderr and on the
 * terminal (Claude Code's TUI hides the helper's stderr): `ffi/darwin/security.ts`, issue 11 #7.
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import { type GenericPasswordApi, Keychain } from "../../ffi/darwin/security.ts";
import { SERVICE, type StoreBackend, type TokenStore } from "./store.ts";

/** Options for {@linkcode MacosKeychainStore}. */
export interface MacosKeychainStoreOptions {
  /** The Keychain to use; tests pass one over a fake Security framework. Default: the real one. */
  api?: GenericPasswordApi;
  /**
   * The items' service. Default {@linkcode SERVICE}; tests on a real Mac use their own, so a
   * developer's tokens are never touched.
   */
  service?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A {@linkcode TokenStore} in the macOS login keychain.
 *
 * Every method needs `--allow-ffi` and `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS`, is bounded
 * by that timeout (3 s by default) per Keychain call, and throws `StoreError`: "locked" (locked
 * keychain without a dialog, wrong password, Deny), "unavailable" (off macOS, no keychain),
 * "timeout" (a dialog left unanswered; the pending call keeps the process alive, so the CLI ends
 * through `Deno.exit`), "corrupt" (an item that is not UTF-8, so not ours), "failed"; the
 * Keychain's ones are `KeychainError`s that keep the OSStatus.
 */
export class MacosKeychainStore implements TokenStore {
  readonly backend: StoreBackend = "macos-keychain";
  readonly #api: GenericPasswordApi;
  readonly #service: string;

  constructor(options: MacosKeychainStoreOptions = {}) {
    this.#api = options.api ?? new Keychain(undefined, { onDialogWait: sayWaitingForDialog });
    this.#service = options.service ?? SERVICE;
  }

  async get(item: string): Promise<string | null> {
    const data = await this.#api.find(this.#service, item);
    if (data === null) return null;
    try {
      return decoder.decode(data);
    } catch {
      throw new StoreError(
        "corrupt",
        `macOS Keychain item ${this.#service}/${item} does not hold UTF-8 text, so ` +
          `agent-runner-auth did not write it; delete it with: security ` +
          `delete-generic-password -s ${this.#service} -a ${item}`,
      );
    } finally {
      data.fill(0);
    }
  }

  async set(item: string, value: string): Promise<void> {
    if (!value.isWellFormed()) {
      throw new TypeError("A macOS Keychain value is not well-formed Unicode (lone surrogate)");
    }
    const data = encoder.encode(value);
    try {
      // Update first: the common case (a refresh) and the one that keeps the access list.
      if (await this.#api.update(this.#service, item, data)) return;
      if (await this.#api.add(this.#service, item, data)) return;
      // Someone added it between our update and add (errSecDuplicateItem): update that one.
      if (await this.#api.update(this.#service, item, data)) return;
      throw new StoreError(
        "failed",
        `macOS Keychain item ${this.#service}/${item} kept appearing and disappearing while ` +
          `it was written`,
      );
    } finally {
      data.fill(0);
    }
  }

  delete(item: string): Promise<boolean> {
    return this.#api.delete(this.#service, item);
  }
}

/** The line a call waiting on a Keychain dialog says once. */
export const WAITING_FOR_DIALOG = "Waiting for the macOS Keychain dialog…";

/**
 * Says {@linkcode WAITING_FOR_DIALOG} on stderr and, when stderr is not the terminal (Claude
 * Code captures it), on the controlling terminal too, as a failure line is (SPEC.md §1.7). libc
 * is loaded only here, a second into a dialog.
 */
function sayWaitingForDialog(): void {
  const line = `agent-runner-auth: ${WAITING_FOR_DIALOG}\n`;
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch {
    // stderr closed
  }
  if (Deno.stderr.isTerminal()) return;
  import("../../ffi/posix/libc.ts").then((libc) => {
    const tty = libc.openControllingTerminal();
    if (tty === null) return;
    libc.writeFd(tty, encoder.encode(line.replace("\n", "\r\n")));
    libc.closeFd(tty);
  }).catch(() => {});
}
