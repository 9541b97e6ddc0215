/**
 * The cached `token` call's Secret Service read, started before the rest of the program runs.
 *
 * Most of that read is waiting: three round trips on the bus and the keyring's Diffie-Hellman
 * (~2 ms of its own). Building the context, validating the config and opening the store is our
 * own work that needs nothing from the keyring. So `src/main.ts` calls
 * {@linkcode startEarlyRead} first, the read's waits overlap that work, and the store's first
 * read takes the result ({@linkcode dbusRead}) instead of starting one (issue 5). (Until
 * issue 14 the verb's modules were imported dynamically after this call, so the waits also
 * overlapped their loading; they are static imports of `main.ts` now, for the compiled
 * binary's code cache, and load before it.)
 *
 * It is only a head start, never a decision: it starts when the config file (or
 * `AGENT_RUNNER_STORE`) names `secret-service` for the profile, which is what `login` pins, and
 * is used only if the real store selection, after full validation, opens the Secret Service
 * and asks for the same item. Anything odd here (no file, bad JSON, another store) means no
 * head start, and the normal path reports whatever is wrong.
 *
 * @module
 */

import { type Env, resolvePaths } from "../config/paths.ts";
import { DEFAULT_PROFILE, profileItems, selectProfile } from "../config/profile.ts";
import { readSecret, type SecretRead } from "./dbus/secret_read.ts";
import { SECRET_SCHEMA_NAME, SERVICE } from "./store.ts";
import { secretServiceTimeout, storeTimeoutMs } from "../../ffi/timeout.ts";

/** The attributes a lookup of `item` matches, as libsecret sends them (schema included). */
export function lookupAttributes(item: string): Record<string, string> {
  return { service: SERVICE, account: item, "xdg:schema": SECRET_SCHEMA_NAME };
}

let early: { key: string; read: Promise<SecretRead> } | null = null;

/**
 * Starts the D-Bus read of the profile's access-token item when the config pins the Secret
 * Service (module doc), and resolves once `OpenSession` and `SearchItems` are on the socket
 * (after the opening `GetAll` round trip: `secret_read.ts`). The caller awaits that before going
 * on, so the keyring's Diffie-Hellman overlaps our own work: Deno runs no promise jobs of ours
 * while it runs synchronous code, so a read that had not yet written would only go on at the
 * caller's next await. Never rejects. Needs what the CLI has: `--allow-env`, `--allow-read`,
 * `--allow-write` (the bus socket).
 */
export function startEarlyRead(profileFlag?: string, env: Env = Deno.env): Promise<void> {
  try {
    if (Deno.build.os === "darwin" || Deno.build.os === "windows") return Promise.resolve();
    const profile = selectProfile(profileFlag, env);
    if (pinnedStore(profile, env) !== "secret-service") return Promise.resolve();
    const attributes = lookupAttributes(profileItems(profile).access);
    let sent!: () => void;
    const written = new Promise<void>((resolve) => sent = resolve);
    const read = readOverDBus(attributes, env, sent);
    read.catch(() => {}); // a timeout is rethrown to whoever takes it; unused, it is dropped
    early = { key: JSON.stringify(attributes), read };
    return written;
  } catch {
    return Promise.resolve(); // no head start: the normal path reports whatever is wrong
  }
}

/**
 * The Secret Service store's D-Bus read: the early read when it asked for the same
 * attributes (taken once), else a new one.
 */
export function dbusRead(attributes: Record<string, string>): Promise<SecretRead> {
  return takeEarlyRead(attributes) ?? readOverDBus(attributes, Deno.env);
}

/** The early read if it asked for exactly `attributes`; `null` otherwise. Taken once. */
export function takeEarlyRead(attributes: Record<string, string>): Promise<SecretRead> | null {
  const started = early;
  early = null;
  return started && started.key === JSON.stringify(attributes) ? started.read : null;
}

function readOverDBus(
  attributes: Record<string, string>,
  env: Env,
  onSent?: () => void,
): Promise<SecretRead> {
  const timeoutMs = storeTimeoutMs((name) => env.get(name));
  return readSecret(attributes, {
    getEnv: (name) => env.get(name),
    timeoutMs,
    timeoutError: () => secretServiceTimeout(timeoutMs, "lookup"),
    onSent,
  });
}

/** `AGENT_RUNNER_STORE`, else the profile's `store` in the config file, without validation. */
function pinnedStore(profile: string, env: Env): unknown {
  const fromEnv = env.get("AGENT_RUNNER_STORE");
  if (fromEnv) return fromEnv;
  let text = Deno.readTextFileSync(resolvePaths(env).config);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const raw = JSON.parse(text);
  const section = profile === DEFAULT_PROFILE ? raw : raw?.profiles?.[profile];
  return section?.store;
}
