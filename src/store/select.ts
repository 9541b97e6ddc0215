/**
 * Picks the token store (SPEC.md §4). For now: the Linux Secret Service; the full selector
 * with pinning and every backend comes with issue 3.
 *
 * Backends are imported lazily so no other OS's library is ever opened (STYLE.md §3).
 *
 * @module
 */

import type { LoadedConfig } from "../config/config.ts";
import type { Env } from "../config/paths.ts";
import { StoreError } from "../errors.ts";
import type { TokenStore } from "./store.ts";

/** Opens the store named by `AGENT_RUNNER_STORE`, the config's `store`, or the OS default. */
export async function openStore(
  loaded: LoadedConfig | null,
  env: Env = Deno.env,
): Promise<TokenStore> {
  const name = env.get("AGENT_RUNNER_STORE") || loaded?.config.store || "auto";
  if (name === "secret-service" || (name === "auto" && Deno.build.os === "linux")) {
    const { SecretServiceStore } = await import("./secret_service.ts");
    return new SecretServiceStore();
  }
  throw new StoreError(
    "unavailable",
    `The token store "${name}" is not available in this build on ${Deno.build.os}; set AGENT_RUNNER_STORE=secret-service`,
  );
}
