/**
 * The one token-store interface every backend implements (after git-credential-manager's
 * `ICredentialStore`). The token state machine only ever sees this, never a backend.
 *
 * Items are opaque strings keyed by an item name; the token layer decides what goes in them
 * (`src/token/record.ts`). Service name and item names are fixed by SPEC.md §4.
 *
 * @module
 */

/** The keychain service every item lives under. */
export const SERVICE = "agent-runner-auth";

/**
 * The Secret Service schema name, stored by libsecret as the item attribute `xdg:schema` and
 * matched on every lookup. Reverse-DNS as libsecret asks ("org.gnome.Something"), under the
 * product's domain. It is part of the on-disk format: renaming it orphans every stored token.
 */
export const SECRET_SCHEMA_NAME = "io.agent-runner.Token";

// The item names and the store names are config's (profiles and the `store` field name them);
// src/config/ imports nothing from the store layer (issue 13 point 11), so they live there.
export { ACCESS_ITEM, REFRESH_ITEM } from "../config/profile.ts";
export { STORE_NAMES, type StoreName } from "../config/config.ts";

/** Every backend a {@linkcode TokenStore} can be; `memory` exists only in tests. */
export type StoreBackend =
  | "secret-service"
  | "pass"
  | "macos-keychain"
  | "windows-credential-manager"
  | "encrypted-file"
  | "memory";

/**
 * A place to keep secrets. Implementations bound every call by a timeout and throw
 * {@linkcode StoreError} (from `src/errors.ts`) on any failure: a failed read must never look
 * like a missing item.
 */
export interface TokenStore {
  /** Which backend this is, for `status` and for pinning in config. */
  readonly backend: StoreBackend;
  /** The item's value, or `null` when there is no such item. */
  get(item: string): Promise<string | null>;
  /** Create or replace the item (update in place where the OS keeps per-item ACLs). */
  set(item: string, value: string): Promise<void>;
  /** Remove the item; `false` when there was none. */
  delete(item: string): Promise<boolean>;
  /**
   * Called off the cached path before taking the lock: a backend whose first call in a process
   * is costly pays it here, where concurrent callers pay it side by side, instead of under the
   * lock, where they would pay it one after another. Never throws; optional.
   */
  warmUp?(): Promise<void>;
  /**
   * Called when every lookup came back empty, before concluding "not signed in". A backend
   * whose empty answer can also mean "locked" (Secret Service: a locked collection makes a
   * lookup return NULL with no error, SPEC.md §4) throws `StoreError("locked")` here.
   */
  assertUsable?(): Promise<void>;
}
