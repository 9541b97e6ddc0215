/**
 * Profiles: several tenants side by side (issue 4). The default profile uses exactly the item
 * names, lock and files of SPEC.md §3–4, so a single-tenant user never sees the concept; any
 * other profile NAME suffixes them with `@NAME`:
 *
 *     items   agent-runner-access-token@NAME, agent-runner-refresh-token@NAME
 *     lock    <config dir>/lock@NAME          (a login in one tenant never blocks another)
 *     state   <config dir>/login-state@NAME.json, <config dir>/last-print@NAME.json
 *
 * No imports beyond config types: this is on the cached `token` path.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { Env, Paths } from "./paths.ts";

/**
 * The profile whose fields sit at the top level of the config file, exactly as SPEC.md §3 shows
 * them. Other profiles live under `"profiles": {"<name>": {…same fields…}}`.
 */
export const DEFAULT_PROFILE = "default";

/** Item names of the default profile (SPEC.md §4); other profiles add `@NAME`. */
export const ACCESS_ITEM = "agent-runner-access-token";
/** Item names of the default profile (SPEC.md §4); other profiles add `@NAME`. */
export const REFRESH_ITEM = "agent-runner-refresh-token";

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * The profile to use: `--profile` wins over `AGENT_RUNNER_PROFILE`; neither means the default.
 * A malformed name is a usage error naming where it came from.
 */
export function selectProfile(flag: string | undefined, env: Env = Deno.env): string {
  const fromEnv = env.get("AGENT_RUNNER_PROFILE");
  const [name, source] = flag !== undefined
    ? [flag, "--profile"]
    : fromEnv
    ? [fromEnv, "AGENT_RUNNER_PROFILE"]
    : [DEFAULT_PROFILE, ""];
  // The built-in name needs no check: the cached `token` call would otherwise compile its first
  // regular expression (~0.4 ms in a fresh process) to accept "default" (issue 14).
  if (name !== DEFAULT_PROFILE && !NAME.test(name)) {
    throw new UsageError(
      `${source}: "${name}" is not a profile name (lowercase letters, digits, "-" and "_", up to 32)`,
    );
  }
  return name;
}

/** Keychain item names of a profile. */
export function profileItems(profile: string): { access: string; refresh: string } {
  const suffix = profile === DEFAULT_PROFILE ? "" : `@${profile}`;
  return { access: ACCESS_ITEM + suffix, refresh: REFRESH_ITEM + suffix };
}

/** Lock and login-state files of a profile. */
export function profileFiles(
  paths: Paths,
  profile: string,
): { lock: string; loginState: string; lastPrint: string } {
  if (profile === DEFAULT_PROFILE) {
    return { lock: paths.lock, loginState: paths.loginState, lastPrint: paths.lastPrint };
  }
  return {
    lock: `${paths.lock}@${profile}`,
    loginState: paths.loginState.replace(/\.json$/, `@${profile}.json`),
    lastPrint: paths.lastPrint.replace(/\.json$/, `@${profile}.json`),
  };
}
