/**
 * The Linux backend: the freedesktop Secret Service (gnome-keyring, KWallet, KeePassXC) through
 * libsecret. Items are found by the attributes `{service: "agent-runner-auth", account: <item>}`,
 * so `secret-tool lookup service agent-runner-auth account agent-runner-access-token` reads them.
 *
 * The first read of a process goes through the D-Bus reader (`dbus/secret_read.ts`, possibly
 * started early by `early_read.ts`: the same encrypted session, without libsecret's ~12 ms first
 * call), which falls back to libsecret for anything it does not handle cleanly. That read is the
 * cached `token` call's only one. Later reads, and any read after {@linkcode
 * SecretServiceStore.warmUp}, come before a write (a refresh under the lock, a login) that needs
 * libsecret loaded anyway, so they go through libsecret, as do all writes and deletes.
 *
 * @module
 */

import type * as Libsecret from "../../ffi/linux/libsecret.ts";
import { StoreError } from "../errors.ts";
import { debug } from "../log.ts";
import type { SecretRead } from "./dbus/secret_read.ts";
import { dbusRead, lookupAttributes } from "./early_read.ts";
import { SERVICE, type StoreBackend, type TokenStore } from "./store.ts";

/**
 * libsecret's wrapper, imported on first use: a cached `token` call that the D-Bus reader
 * answers never loads it (~0.5 ms of module loading saved).
 */
let libsecretModule: Promise<SecretServiceApi> | undefined;
function loadLibsecret(): Promise<SecretServiceApi> {
  return libsecretModule ??= import("../../ffi/linux/libsecret.ts");
}

/** The account name of the item {@linkcode SecretServiceStore.assertUsable} writes and removes. */
export const PROBE_ITEM = "agent-runner-probe";

/** The three libsecret calls the store needs; tests may pass a fake. */
export interface SecretServiceApi {
  storePassword(
    attributes: Libsecret.SecretAttributes,
    label: string,
    value: string,
  ): Promise<void>;
  lookupPassword(attributes: Libsecret.SecretAttributes): Promise<string | null>;
  clearPassword(attributes: Libsecret.SecretAttributes): Promise<boolean>;
}

/**
 * A read that answers without libsecret, or says to ask libsecret. The default is the D-Bus
 * reader (`early_read.ts`: possibly started before this store was even opened).
 */
export type FastRead = (attributes: Record<string, string>) => Promise<SecretRead>;

/**
 * A {@linkcode TokenStore} in the user's default Secret Service collection.
 *
 * Every method needs `--allow-ffi` (unscoped) and `--allow-env` (the bus address and
 * `AGENT_RUNNER_STORE_TIMEOUT_MS`); the D-Bus reader also `--allow-read --allow-write` on the bus
 * socket (without them it hands the read to libsecret). Each call is bounded by that timeout
 * (3 s by default), and throws `StoreError` ("unavailable", "locked", "timeout", "failed").
 * After a "timeout" the native call is still pending and keeps the process alive: the CLI ends
 * through `Deno.exit` in `src/main.ts`.
 */
export class SecretServiceStore implements TokenStore {
  readonly backend: StoreBackend = "secret-service";
  /** A test's fake; `undefined`: the real libsecret, loaded on first use. */
  readonly #api: SecretServiceApi | undefined;
  /** Cleared by the first read and by `warmUp`: see the module doc. */
  #fastRead: FastRead | null;

  /** `fastRead` defaults to the D-Bus reader with the real libsecret, to none with a fake. */
  constructor(api?: SecretServiceApi, fastRead: FastRead | null = api ? null : dbusRead) {
    this.#api = api;
    this.#fastRead = fastRead;
  }

  /** Set when the warm-up timed out: the service is hung, and every later call would wait too. */
  #hung: StoreError | null = null;

  #libsecret(): Promise<SecretServiceApi> {
    if (this.#hung) return Promise.reject(this.#hung);
    return this.#api ? Promise.resolve(this.#api) : loadLibsecret();
  }

  async get(item: string): Promise<string | null> {
    const attributes = attributesOf(item);
    const fastRead = this.#fastRead;
    this.#fastRead = null;
    if (fastRead) {
      // libsecret matches the schema name on every lookup (flags NONE): so does this read.
      const read = await fastRead(lookupAttributes(item));
      if (read.kind !== "fallback") {
        debug(`Secret Service: read ${item} over D-Bus (encrypted session)`);
        return read.kind === "found" ? read.value : null;
      }
      debug(`Secret Service: reading ${item} through libsecret (${read.why})`);
    }
    return await (await this.#libsecret()).lookupPassword(attributes);
  }

  /**
   * Loads libsecret and makes its first call (a lookup of the probe item, which never exists):
   * the ~10 ms of dlopen, GDBus connection and proxies that the reads under the lock and the
   * writes would otherwise pay one caller at a time. Later reads go through libsecret too. If
   * it times out, later calls fail at once with that error instead of waiting out the timeout
   * again (a hung service would otherwise cost `token` two timeouts).
   */
  async warmUp(): Promise<void> {
    this.#fastRead = null;
    try {
      await (await this.#libsecret()).lookupPassword(attributesOf(PROBE_ITEM));
    } catch (error) {
      // Anything else: the real calls report it.
      if (error instanceof StoreError && error.failure === "timeout") this.#hung = error;
    }
  }

  async set(item: string, value: string): Promise<void> {
    return await (await this.#libsecret()).storePassword(attributesOf(item), labelOf(item), value);
  }

  async delete(item: string): Promise<boolean> {
    return await (await this.#libsecret()).clearPassword(attributesOf(item));
  }

  /**
   * A lookup in a locked collection answers NULL with no error, so an empty answer proves
   * nothing. Writing is what fails there ("Cannot create an item in a locked collection", or
   * "Object does not exist at path …/collection/login" when no login keyring exists yet), so
   * store a throw-away probe item and remove it: one store and one clear on success. On a
   * desktop with a prompter the store asks the user to unlock, which is what we want; the
   * timeout bounds it.
   */
  async assertUsable(): Promise<void> {
    // The wrapper already maps the locked texts to "locked" and no bus / no provider to
    // "unavailable"; anything else stays "failed", which is still never read as "no token".
    const attributes = attributesOf(PROBE_ITEM);
    const api = await this.#libsecret();
    await api.storePassword(attributes, labelOf(PROBE_ITEM), "probe");
    await api.clearPassword(attributes);
  }
}

function attributesOf(item: string): Libsecret.SecretAttributes {
  return { service: SERVICE, account: item };
}

/** The label keychain UIs (Seahorse, KWallet) show. */
function labelOf(item: string): string {
  return `${SERVICE}: ${item}`;
}
