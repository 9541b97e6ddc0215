/**
 * What every verb resolves first: paths, the profile and its item names, lock and state
 * files, and the tunables. No imports beyond Deno APIs: `token` builds this on its cached path.
 *
 * @module
 */

import { type Paths, resolvePaths } from "../config/paths.ts";
import { profileFiles, profileItems, selectProfile } from "../config/profile.ts";
import { readTunables, type Tunables } from "../config/tunables.ts";

/** The resolved context of one invocation. */
export interface Context {
  paths: Paths;
  profile: string;
  items: { access: string; refresh: string };
  files: { lock: string; loginState: string; lastPrint: string };
  tunables: Tunables;
}

/** Builds the context for `--profile` (or `AGENT_RUNNER_PROFILE`, or the default). */
export function makeContext(profileFlag?: string): Context {
  const paths = resolvePaths();
  const profile = selectProfile(profileFlag);
  return {
    paths,
    profile,
    items: profileItems(profile),
    files: profileFiles(paths, profile),
    tunables: readTunables(),
  };
}
