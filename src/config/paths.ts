/**
 * Where agent-runner-auth keeps its files (SPEC.md §3).
 *
 * `AGENT_RUNNER_CONFIG_DIR` moves the config, the lock and any file store together, so a
 * container or a test gets a private world with one variable. Otherwise
 * `$XDG_CONFIG_HOME/agent-runner` (default `~/.config/agent-runner`) on Unix and
 * `%APPDATA%\agent-runner` on Windows.
 *
 * Needs `--allow-env`.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";

/** Environment reader, so tests can pass a plain map. */
export interface Env {
  get(name: string): string | undefined;
}

/** The files agent-runner-auth owns. */
export interface Paths {
  dir: string;
  config: string;
  /** Dedicated flock target: never replaced, renamed or truncated (kubelogin #1144). */
  lock: string;
  /** Outcome of the last browser login, for waiters and the abandoned-login cooldown. */
  loginState: string;
  /** Hash of the last printed token and who got it (rejected-token recovery, SPEC.md §1.6). */
  lastPrint: string;
  /**
   * The failure log (`doctor` and `status` point to it, since Claude Code may hide stderr):
   * `$XDG_STATE_HOME/agent-runner` (`~/.local/state/agent-runner`), `%LOCALAPPDATA%` on
   * Windows, or the `AGENT_RUNNER_CONFIG_DIR` override.
   */
  log: string;
}

/** Resolves {@linkcode Paths} from the environment. */
export function resolvePaths(env: Env = Deno.env, os: typeof Deno.build.os = Deno.build.os): Paths {
  const sep = os === "windows" ? "\\" : "/";
  const override = nonEmpty(env.get("AGENT_RUNNER_CONFIG_DIR"));
  const dir = override ?? defaultDir(env, os, sep);
  const stateDir = override ?? defaultStateDir(env, os, sep);
  return {
    dir,
    config: `${dir}${sep}config.json`,
    lock: `${dir}${sep}lock`,
    loginState: `${dir}${sep}login-state.json`,
    lastPrint: `${dir}${sep}last-print.json`,
    log: `${stateDir}${sep}agent-runner-auth.log`,
  };
}

function defaultStateDir(env: Env, os: typeof Deno.build.os, sep: string): string {
  if (os === "windows") {
    const local = nonEmpty(env.get("LOCALAPPDATA")) ?? nonEmpty(env.get("APPDATA"));
    if (local) return `${local}${sep}agent-runner`;
  }
  const xdg = nonEmpty(env.get("XDG_STATE_HOME"));
  if (xdg && os !== "windows") return `${xdg}${sep}agent-runner`;
  const home = nonEmpty(env.get("HOME")) ?? nonEmpty(env.get("USERPROFILE"));
  if (!home) {
    throw new ConfigError(
      "Cannot find the state directory: HOME is not set (set HOME or AGENT_RUNNER_CONFIG_DIR)",
    );
  }
  return `${home}${sep}.local${sep}state${sep}agent-runner`;
}

function defaultDir(env: Env, os: typeof Deno.build.os, sep: string): string {
  if (os === "windows") {
    const appData = nonEmpty(env.get("APPDATA"));
    if (appData) return `${appData}${sep}agent-runner`;
  }
  const xdg = nonEmpty(env.get("XDG_CONFIG_HOME"));
  if (xdg && os !== "windows") return `${xdg}${sep}agent-runner`;
  const home = nonEmpty(env.get("HOME")) ?? nonEmpty(env.get("USERPROFILE"));
  if (!home) {
    throw new ConfigError(
      "Cannot find the config directory: HOME is not set (set HOME or AGENT_RUNNER_CONFIG_DIR)",
    );
  }
  return `${home}${sep}.config${sep}agent-runner`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
