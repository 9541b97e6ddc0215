/**
 * The Linux backend: the freedesktop Secret Service (gnome-keyring, KWallet, KeePassXC) through
 * libsecret. Items are found by the attributes `{service: "agent-runner-auth", account: <item>}`,
 * so `secret-tool lookup service agent-runner-auth account agent-runner-access-token` reads them.
 *
 * @module
 */

import * as libsecret from "../../ffi/linux/libsecret.ts";
import { SERVICE, type StoreBackend, type TokenStore } from "./store.ts";

/** The account name of the item {@linkcode SecretServiceStore.assertUsable} writes and removes. */
export const PROBE_ITEM = "agent-runner-probe";

/** The three libsecret calls the store needs; tests may pass a fake. */
export interface SecretServiceApi {
  storePassword(
    attributes: libsecret.SecretAttributes,
    label: string,
    value: string,
  ): Promise<void>;
  lookupPassword(attributes: libsecret.SecretAttributes): Promise<string | null>;
  clearPassword(attributes: libsecret.SecretAttributes): Promise<boolean>;
}

/**
 * A {@linkcode TokenStore} in the user's default Secret Service collection.
 *
 * Every method needs `--allow-ffi` (unscoped) and `--allow-env=AGENT_RUNNER_STORE_TIMEOUT_MS`,
 * is bounded by that timeout (3 s by default), and throws `StoreError` ("unavailable", "locked",
 * "timeout", "failed"). After a "timeout" the native call is still pending and keeps the process
 * alive: the CLI ends through `Deno.exit` in `src/main.ts`.
 */
export class SecretServiceStore implements TokenStore {
  readonly backend: StoreBackend = "secret-service";
  readonly #api: SecretServiceApi;

  constructor(api: SecretServiceApi = libsecret) {
    this.#api = api;
  }

  get(item: string): Promise<string | null> {
    return this.#api.lookupPassword(attributesOf(item));
  }

  set(item: string, value: string): Promise<void> {
    return this.#api.storePassword(attributesOf(item), labelOf(item), value);
  }

  delete(item: string): Promise<boolean> {
    return this.#api.clearPassword(attributesOf(item));
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
    await this.#api.storePassword(attributes, labelOf(PROBE_ITEM), "probe");
    await this.#api.clearPassword(attributes);
  }
}

function attributesOf(item: string): libsecret.SecretAttributes {
  return { service: SERVICE, account: item };
}

/** The label keychain UIs (Seahorse, KWallet) show. */
function labelOf(item: string): string {
  return `${SERVICE}: ${item}`;
}
