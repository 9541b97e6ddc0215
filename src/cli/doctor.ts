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
import type { Verb } from "./dispatch.ts";
import { stderrText } from "./output.ts";

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
      stderrText(render(checks));
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
      fix: `fix the file by hand (it is never overwritten)`,
    });
  }

  add(await checkDirectory(paths.dir, ctx.files.lock));
  const token = loaded ? await checkStore(loaded, ctx.items, add) : null;
  if (loaded) {
    add(checkPort(loaded));
    add(await checkAuthDomain(loaded, readTunables().httpTimeoutMs));
  }
  add(checkLifetime(token));
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

async function checkDirectory(dir: string, lock: string): Promise<Check> {
  // Windows has no permission bits: Deno reports every writable file as 0666 there (seen under
  // Wine), and what keeps %APPDATA% private is its per-user ACL, so only POSIX modes are checked.
  const posix = Deno.build.os !== "windows";
  try {
    const d = await Deno.stat(dir);
    const problems: string[] = [];
    if (posix && d.mode !== null && (d.mode & 0o077) !== 0) {
      problems.push(`${dir} is ${octal(d.mode)}, not 0700`);
    }
    try {
      const l = await Deno.stat(lock);
      if (posix && l.mode !== null && (l.mode & 0o077) !== 0) {
        problems.push(`${lock} is ${octal(l.mode)}, not 0600`);
      }
      if (!l.isFile) problems.push(`${lock} is not a regular file`);
    } catch {
      // created on first refresh or login
    }
    if (problems.length) {
      return {
        check: "files",
        ok: false,
        detail: problems.join("; "),
        fix: `chmod 700 ${dir}; chmod 600 ${lock}`,
      };
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

function checkLifetime(token: { lifetimeMs: number } | null): Check {
  const raw = Deno.env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS");
  const ttl = raw && /^\d+$/.test(raw.trim()) ? Number(raw) : CLAUDE_DEFAULT_TTL_MS;
  const source = raw
    ? `CLAUDE_CODE_API_KEY_HELPER_TTL_MS=${raw}`
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

async function claudeSettingsChecks(
  loaded: LoadedConfig | null,
  lifetimeMs: number | null,
): Promise<Check[]> {
  try {
    const mod = await import("../claude/settings.ts");
    const files = mod.claudeSettingsPaths().map((p: { path: string }) => p.path);
    return mod.inspectClaudeSettings(files, {
      tenantUrl: loaded?.config.tenant_url ?? null,
      profile: loaded?.profile,
      lifetimeMs,
    }) as Check[];
  } catch (error) {
    return [{ check: "claude settings", ok: false, detail: messageOf(error) }];
  }
}

function render(checks: Check[]): string {
  const color = Deno.stderr.isTerminal() && !Deno.env.get("NO_COLOR");
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
