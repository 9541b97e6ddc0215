/**
 * Timeouts and bounds, each overridable by an environment variable (for slow networks, and
 * so the tests can shrink them). A malformed value is a config error naming the variable.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";
import type { Env } from "./paths.ts";

/** Every tunable with its variable and default. Documented in the README. */
export const TUNABLES = {
  httpTimeoutMs: ["AGENT_RUNNER_HTTP_TIMEOUT_MS", 10_000],
  loginTimeoutMs: ["AGENT_RUNNER_LOGIN_TIMEOUT_MS", 300_000],
  lockTimeoutMs: ["AGENT_RUNNER_LOCK_TIMEOUT_MS", 330_000],
  loginCooldownMs: ["AGENT_RUNNER_LOGIN_COOLDOWN_MS", 60_000],
} as const;

/** Resolved values. */
export type Tunables = { -readonly [K in keyof typeof TUNABLES]: number };

/** Reads all tunables from `env`. */
export function readTunables(env: Env = Deno.env): Tunables {
  const out = {} as Tunables;
  for (const [key, [name, fallback]] of Object.entries(TUNABLES)) {
    const raw = env.get(name);
    let value: number = fallback;
    if (raw !== undefined && raw !== "") {
      value = Number(raw);
      if (!Number.isInteger(value) || value < 0) {
        throw new ConfigError(`${name}="${raw}" must be a whole number of milliseconds`);
      }
    }
    out[key as keyof Tunables] = value;
  }
  return out;
}
