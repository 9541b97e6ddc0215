/**
 * `agent-runner-auth doctor [--json]`: one line per check, ✓ or ✗, with the fix. Claude Code
 * hides the helper's stderr most of the time ("Your apiKeyHelper script is failing"), so this
 * is where a user finds out what is wrong: config, store, lock, callback port, auth domain and
 * clock, token lifetime against the helper TTL, Claude Code's settings, and stray
 * `ANTHROPIC_API_KEY`/`ANTHROPIC_AUTH_TOKEN`, which silently win over the helper.
 *
 * Exit 0 when every check passes, 1 otherwise.
 *
 * @module
 */

import { DEFAULT_REDIRECT_URIS, loadConfig, type LoadedConfig } from "../config/config.ts";
import { resolvePaths } from "../config/paths.ts";
import { readTunables } from "../config/tunables.ts";
import { appendLog } from "../log.ts";
import { openStore } from "../store/select.ts";
import type { TokenStore } from "../store/store.ts";
import { CLAUDE_DEFAULT_TTL_MS, DEFAULT_POLICY } from "../token/classify.ts";
import { decodeAccess } from "../token/record.ts";
import { makeContext } from "./context.ts";
import type { Verb } from "./verb.ts";
import { stdoutText } from "./output.ts";

/** One check's outcome, as `--json` prints it. */
export interface Check {
  check: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** The `doctor` verb. */
export const doctorVerb: Verb = {
  name: "doctor",
  summary: "agent-runner-auth doctor: check everything the token helper depends on",
  usage: `Usage: agent-runner-auth doctor [--json] [--profile NAME]

Checks the config, the token store (and its latency), the lock file, the callback port, the
auth domain (reachability and clock offset), the token lifetime against
CLAUDE_CODE_API_KEY_HELPER_TTL_MS, Claude Code's settings, and ANTHROPIC_API_KEY /
ANTHROPIC_AUTH_TOKEN in the environment. Exit 0 when all pass, 1 otherwise.

Examples:
  agent-runner-auth doctor
  agent-runner-auth doctor --json | jq '.checks[] | select(.ok == false)'`,
  options: { json: { type: "boolean" } },
  run: async (values) => {
    const checks = await runChecks(values.profile as string | undefined);
    const ok = checks.every((c) => c.ok);
    if (values.json) {
      console.log(JSON.stringify({ version: 1, ok, checks }, null, 2));
    } else {
      stdoutText(render(checks));
    }
    if (!ok) {
      const failed = checks.filter((c) => !c.ok).map((c) => c.check).join(", ");
      appendLog(resolvePaths().log, `doctor failed checks: ${failed}`);
    }
    return ok ? 0 : 1;
  },
};

/** Runs every check; never throws (a check that cannot run is a failed check). */
export async function runChecks(profileFlag?: string): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  let ctx;
  try {
    ctx = makeContext(profileFlag);
  } catch (error) {
    add({
      check: "environment",
      ok: false,
      detail: messageOf(error),
      fix: "set HOME or AGENT_RUNNER_CONFIG_DIR",
    });
    return checks;
  }
  const { paths } = ctx;

  let loaded: LoadedConfig | null = null;
  try {
    loaded = loadConfig(paths.config, ctx.profile);
    add(
      loaded
        ? { check: "config", ok: true, detail: `${paths.config} is valid (profile ${ctx.profile})` }
        : {
          check: "config",
          ok: false,
          detail: `${paths.config} does not exist`,
          fix: "agent-runner-auth login --tenant-url URL --auth-domain HOST --client-id ID",
        },
    );
  } catch (error) {
    add({
      check: "config",
      ok: false,
      detail: messageOf(error),
      fix: configFix(messageOf(error), paths.config, ctx.profile),
    });
  }

  add(await checkDirectory(paths.dir, ctx.files.lock));
  const token = loaded ? await checkStore(loaded, ctx.items, add) : null;
  if (loaded) {
    add(checkPort(loaded));
    add(await checkAuthDomain(loaded, readTunables().httpTimeoutMs));
  }
  const claudeEnv = await settingsEnv();
  add(checkLifetime(token, claudeEnv));
  add(await checkClaudeEndpoint(loaded, claudeEnv, readTunables().httpTimeoutMs));
  for (const name of ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]) {
    const set = (Deno.env.get(name) ?? "") !== "";
    add({
      check: `environment ${name}`,
      ok: !set,
      detail: set
        ? `${name} is set: Claude Code uses it instead of apiKeyHelper`
        : `${name} is not set`,
      ...(set ? { fix: `unset ${name} (and remove it from your shell profile)` } : {}),
    });
  }
  for (const c of await claudeSettingsChecks(loaded, token?.lifetimeMs ?? null)) add(c);
  return checks;
}

/**
 * The config check's fix: what to change, where. `login` with the flag repairs a bad or
 * missing field (it merges flags over the file); anything that is not JSON must be edited,
 * since nothing ever overwrites a broken file.
 */
export function configFix(message: string, path: string, profile: string): string {
  const onProfile = profile === "default" ? "" : ` --profile ${profile}`;
  const login = `agent-runner-auth login${onProfile}`;
  const flags: Record<string, string> = {
    tenant_url: "--tenant-url URL",
    auth_domain: "--auth-domain HOST",
    client_id: "--client-id ID",
    scope: '--scope "openid email profile proxy/invoke"',
    redirect_uri: "--redirect-uri http://localhost:47621/callback",
  };
  const line = /^.*:(\d+): invalid JSON/.exec(message)?.[1];
  if (line) return `correct the JSON syntax on line ${line} of ${path}, then run doctor again`;
  const field = /field "(?:profiles\.[^"]*\.)?([^".]+)"/.exec(message)?.[1];
  if (field && /is missing$/.test(message)) {
    return flags[field]
      ? `${login} ${flags[field]} (adds "${field}" to ${path})`
      : `add "${field}" to ${path}`;
  }
  if (field && flags[field]) {
    return `${login} ${flags[field]} (replaces "${field}" in ${path}), or correct it in the file`;
  }
  if (field) return `correct "${field}" in ${path} (the README's config table lists the values)`;
  if (/there is no profile/.test(message)) {
    return `${login} --tenant-url URL --auth-domain HOST --client-id ID`;
  }
  if (/the file is empty|expected a JSON object/.test(message)) {
    return `write the settings as a JSON object in ${path}, or remove it and run ${login} --tenant-url URL --auth-domain HOST --client-id ID`;
  }
  if (/^Cannot read/.test(message)) return `make ${path} readable by you (ls -l ${path})`;
  return `correct ${path} (it is never overwritten)`;
}

/** The config directory and lock file are private; the fix names only what exists. */
export async function checkDirectory(dir: string, lock: string): Promise<Check> {
  // Windows has no permission bits: Deno reports every writable file as 0666 there (seen under
  // Wine), and what keeps %APPDATA% private is its per-user ACL, so only POSIX modes are checked.
  const posix = Deno.build.os !== "windows";
  try {
    const d = await Deno.stat(dir);
    const problems: string[] = [];
    // Only files that exist and are wrong are named in the fix.
    const fixes: string[] = [];
    if (posix && d.mode !== null && (d.mode & 0o077) !== 0) {
      problems.push(`${dir} is ${octal(d.mode)}, not 0700`);
      fixes.push(`chmod 700 ${dir}`);
    }
    try {
      const l = await Deno.lstat(lock);
      if (!l.isFile) {
        problems.push(`${lock} is not a regular file`);
        fixes.push(`remove ${lock} (the next refresh or login creates it)`);
      } else if (posix && l.mode !== null && (l.mode & 0o077) !== 0) {
        problems.push(`${lock} is ${octal(l.mode)}, not 0600`);
        fixes.push(`chmod 600 ${lock}`);
      }
    } catch {
      // created on first refresh or login
    }
    if (problems.length) {
      return { check: "files", ok: false, detail: problems.join("; "), fix: fixes.join("; ") };
    }
    return {
      check: "files",
      ok: true,
      detail: posix
        ? `${dir} is private; lock file ${lock}`
        : `${dir} (private through its per-user ACL); lock file ${lock}`,
    };
  } catch {
    return { check: "files", ok: true, detail: `${dir} does not exist yet (created at login)` };
  }
}

async function checkStore(
  loaded: LoadedConfig,
  items: { access: string; refresh: string },
  add: (c: Check) => void,
): Promise<{ lifetimeMs: number } | null> {
  let store;
  try {
    store = await openStore(loaded);
    const probe = "agent-runner-doctor-probe";
    const started = performance.now();
    await store.set(probe, "probe");
    const back = await store.get(probe);
    await store.delete(probe);
    const ms = performance.now() - started;
    if (back !== "probe") throw new Error("the probe item did not read back");
    add({
      check: "store",
      ok: true,
      detail: `${store.backend} answers; write+read+delete took ${ms.toFixed(0)} ms`,
    });
    if (store.backend === "secret-service") add(await checkDirectRead(store, probe));
  } catch (error) {
    add({
      check: "store",
      ok: false,
      detail: messageOf(error),
      fix: "unlock or start the keyring, or choose a store with AGENT_RUNNER_STORE",
    });
    return null;
  }
  try {
    const raw = await store.get(items.access);
    const refresh = await store.get(items.refresh);
    const access = raw ? decodeAccess(raw, Date.now()) : null;
    const signedIn = refresh !== null ||
      (access?.ok === true && access.record.expiresAt > Date.now());
    add({
      check: "session",
      ok: signedIn,
      detail: signedIn
        ? `signed in${
          access?.ok && access.record.user?.email ? ` as ${access.record.user.email}` : ""
        }`
        : "no usable tokens",
      ...(signedIn ? {} : {
        fix: loaded.profile === "default"
          ? "agent-runner-auth login"
          : `agent-runner-auth login --profile ${loaded.profile}`,
      }),
    });
    if (access?.ok && access.record.lifetimeKnown) {
      return { lifetimeMs: access.record.expiresAt - access.record.obtainedAt };
    }
  } catch (error) {
    add({ check: "session", ok: false, detail: messageOf(error) });
  }
  return null;
}

/**
 * Whether the cached `token` read can skip libsecret (src/store/dbus/): informational, never a
 * failure, because libsecret answers whenever it cannot, only slower.
 */
async function checkDirectRead(store: TokenStore, probe: string): Promise<Check> {
  const { dbusRead, lookupAttributes } = await import("../store/early_read.ts");
  try {
    await store.set(probe, "probe");
    const started = performance.now();
    const read = await dbusRead(lookupAttributes(probe));
    const ms = performance.now() - started;
    await store.delete(probe);
    if (read.kind === "found" && read.value === "probe") {
      return {
        check: "cached read",
        ok: true,
        detail: `straight over D-Bus, encrypted session, in ${ms.toFixed(0)} ms`,
      };
    }
    const why = read.kind === "fallback" ? read.why : "the probe item was not found";
    return { check: "cached read", ok: true, detail: `through libsecret, slower (${why})` };
  } catch (error) {
    return { check: "cached read", ok: true, detail: `through libsecret (${messageOf(error)})` };
  }
}

function checkPort(loaded: LoadedConfig): Check {
  const candidates = loaded.config.redirect_uri
    ? [loaded.config.redirect_uri]
    : DEFAULT_REDIRECT_URIS;
  const busy: string[] = [];
  for (const uri of candidates) {
    const u = new URL(uri);
    const host = u.hostname === "localhost" ? "127.0.0.1" : u.hostname.replace(/^\[|\]$/g, "");
    try {
      Deno.listen({ hostname: host, port: Number(u.port) }).close();
      return { check: "callback port", ok: true, detail: `${host}:${u.port} is free for ${uri}` };
    } catch {
      busy.push(`${host}:${u.port}`);
    }
  }
  return {
    check: "callback port",
    ok: false,
    detail: `${busy.join(", ")} in use: a browser login could not receive its callback`,
    fix:
      "stop the program using the port, or set redirect_uri in config.json to another registered loopback URL",
  };
}

async function checkAuthDomain(loaded: LoadedConfig, timeoutMs: number): Promise<Check> {
  const url = `${loaded.authBase.href.replace(/\/$/, "")}/oauth2/token`;
  const started = Date.now();
  try {
    const response = await fetch(url, {
      method: "GET",
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
    });
    await response.body?.cancel();
    const ended = Date.now();
    const date = Date.parse(response.headers.get("date") ?? "");
    if (!Number.isFinite(date)) {
      return {
        check: "auth domain",
        ok: true,
        detail:
          `${loaded.authBase.host} answers (HTTP ${response.status}); no Date header to compare clocks`,
      };
    }
    // The Date header has a 1 s resolution: compare against the middle of the request.
    const offset = Math.round((date - (started + ended) / 2) / 1000);
    const ok = Math.abs(offset) <= 60;
    return {
      check: "auth domain",
      ok,
      detail: `${loaded.authBase.host} answers (HTTP ${response.status}); clock offset ${
        offset >= 0 ? "+" : ""
      }${offset} s`,
      ...(ok ? {} : { fix: "synchronise the system clock (e.g. timedatectl set-ntp true)" }),
    };
  } catch (error) {
    return {
      check: "auth domain",
      ok: false,
      detail: `${loaded.authBase.host} does not answer: ${messageOf(error)}`,
      fix: "check auth_domain in config.json, the network, or a proxy",
    };
  }
}

/**
 * The `env` blocks of Claude Code's settings files merged as Claude merges them (later files
 * win per variable; research A.1): what the helper and Claude itself will see, since the
 * settings `env` wins over the shell's environment. Unreadable files are skipped here (the
 * settings checks report them).
 */
async function settingsEnv(): Promise<Map<string, { value: string; path: string }>> {
  const out = new Map<string, { value: string; path: string }>();
  try {
    const { claudeSettingsPaths } = await import("../claude/settings.ts");
    for (const { path } of claudeSettingsPaths()) {
      let env: unknown;
      try {
        env = JSON.parse(Deno.readTextFileSync(path))?.env;
      } catch {
        continue;
      }
      if (typeof env !== "object" || env === null) continue;
      for (const [k, v] of Object.entries(env)) {
        if (typeof v === "string") out.set(k, { value: v, path });
      }
    }
  } catch {
    // no HOME: no settings
  }
  return out;
}

/** A variable as Claude Code sees it: its settings `env` first, then the environment. */
function claudeVar(
  env: Map<string, { value: string; path: string }>,
  name: string,
): { value: string; source: string } | null {
  const s = env.get(name);
  if (s) return { value: s.value, source: `${name}=${s.value} in ${s.path}` };
  const e = Deno.env.get(name);
  return e ? { value: e, source: `${name}=${e} in the environment` } : null;
}

function checkLifetime(
  token: { lifetimeMs: number } | null,
  claudeEnv: Map<string, { value: string; path: string }>,
): Check {
  const found = claudeVar(claudeEnv, "CLAUDE_CODE_API_KEY_HELPER_TTL_MS");
  const raw = found?.value;
  const ttl = raw && /^\d+$/.test(raw.trim()) ? Number(raw) : CLAUDE_DEFAULT_TTL_MS;
  const source = found
    ? found.source
    : `Claude Code's default TTL (${CLAUDE_DEFAULT_TTL_MS / 60000} min)`;
  if (!token) {
    return { check: "token lifetime", ok: true, detail: `${source}; no token to compare with yet` };
  }
  const need = ttl + DEFAULT_POLICY.marginMs;
  const ok = token.lifetimeMs >= need;
  return {
    check: "token lifetime",
    ok,
    detail: `access tokens live ${Math.round(token.lifetimeMs / 60000)} min; ${source}`,
    ...(ok ? {} : {
      fix: `set CLAUDE_CODE_API_KEY_HELPER_TTL_MS below ${
        token.lifetimeMs - DEFAULT_POLICY.marginMs
      } (e.g. ${
        Math.max(0, token.lifetimeMs - 5 * 60000)
      }) so Claude Code never reuses an expired token`,
    }),
  };
}

/**
 * Where Claude Code will post (it appends `/v1/messages` to `ANTHROPIC_BASE_URL`, research
 * A.7), and whether that route exists: a POST without any credential (never a token) answers
 * 401/403 where the proxy serves the route and 404 where the base URL is wrong. Anthropic's
 * own API is never probed; an unreachable host only says so (it may be reachable from where
 * Claude runs).
 */
async function checkClaudeEndpoint(
  loaded: LoadedConfig | null,
  claudeEnv: Map<string, { value: string; path: string }>,
  timeoutMs: number,
): Promise<Check> {
  const check = "claude endpoint";
  const found = claudeVar(claudeEnv, "ANTHROPIC_BASE_URL");
  if (!found) {
    // The settings check below reports it as a failure; this line only says where Claude goes.
    return {
      check,
      ok: true,
      detail: "ANTHROPIC_BASE_URL is not set: Claude Code would post to api.anthropic.com",
    };
  }
  let url: URL;
  try {
    url = new URL(`${found.value.trim().replace(/\/+$/, "")}/v1/messages?beta=true`);
  } catch {
    return {
      check,
      ok: false,
      detail: `${found.source} is not a URL`,
      fix: "agent-runner-auth setup claude",
    };
  }
  const where = `Claude Code posts to ${url.href} (${found.source})`;
  if (url.hostname === "api.anthropic.com") return { check, ok: true, detail: where };
  const fix = `agent-runner-auth setup claude --base-url URL (or "anthropic_base_url" in ${
    loaded?.path ?? "config.json"
  }) with the base your tenant's proxy serves`;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: "{}",
      redirect: "manual",
      signal: AbortSignal.timeout(Math.min(timeoutMs, 3000)),
    });
    await response.body?.cancel();
    const status = response.status;
    if (status === 401 || status === 403) {
      return {
        check,
        ok: true,
        detail: `${where}; it answers ${status} without a token: the route exists`,
      };
    }
    if (status === 404) {
      return {
        check,
        ok: false,
        detail: `${where}; it answers 404 without a token: no Messages API there`,
        fix,
      };
    }
    if (status >= 300 && status < 400) {
      return {
        check,
        ok: false,
        detail:
          `${where}; it redirects (${status}), which Claude Code does not follow with credentials`,
        fix,
      };
    }
    return { check, ok: true, detail: `${where}; it answers ${status} without a token` };
  } catch (error) {
    return { check, ok: true, detail: `${where}; not reachable from here (${messageOf(error)})` };
  }
}

async function claudeSettingsChecks(
  loaded: LoadedConfig | null,
  lifetimeMs: number | null,
): Promise<Check[]> {
  try {
    const mod = await import("../claude/settings.ts");
    const files = mod.claudeSettingsPaths().map((p: { path: string }) => p.path);
    return mod.inspectClaudeSettings(files, {
      tenantUrl: loaded?.config.tenant_url ?? null,
      baseUrl: loaded?.config.anthropic_base_url,
      profile: loaded?.profile,
      lifetimeMs,
    }) as Check[];
  } catch (error) {
    return [{ check: "claude settings", ok: false, detail: messageOf(error) }];
  }
}

function render(checks: Check[]): string {
  const color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
  const mark = (ok: boolean) =>
    ok ? (color ? "\x1b[32m✓\x1b[0m" : "✓") : (color ? "\x1b[31m✗\x1b[0m" : "✗");
  const lines = checks.map((c) =>
    `${mark(c.ok)} ${c.check}: ${c.detail}${c.fix ? ` — fix: ${c.fix}` : ""}`
  );
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(
    failed
      ? `${failed} check${failed === 1 ? "" : "s"} failed; log: ${resolvePaths().log}`
      : "All checks passed.",
  );
  return lines.join("\n");
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
