/**
 * `agent-runner-auth status [--json]`: who is signed in where, until when, with which store.
 * Never prints a token, and makes no network request: everything comes from the config and
 * the access-token item's envelope (its expiry and the ID token's email/username).
 *
 * `--json` prints one object on stdout (data, not status), shape version 1:
 *
 *     { "version": 1, "config_path": "...", "log_path": "...", "error": null,
 *       "profiles": [ { "profile": "default", "tenant_url": "...", "auth_domain": "...",
 *         "client_id": "...", "store": "secret-service", "signed_in": true,
 *         "user": { "email": "...", "username": "..." } | null,
 *         "access_token": { "present": true, "expires_at": "ISO", "expires_in_seconds": 3412,
 *                           "fresh": true, "lifetime_known": true },
 *         "refresh_token": { "present": true, "expires_at": null },
 *         "error": null } ] }
 *
 * Exit 0 when every profile shown has a usable session (a valid access token or a refresh
 * token), 1 otherwise, 3 for any config error (then the top-level `error` says which).
 *
 * @module
 */

import { loadConfigObject, profileNames, validateConfig } from "../config/config.ts";
import { profileItems, selectProfile } from "../config/profile.ts";
import { resolvePaths } from "../config/paths.ts";
import { AppError, ConfigError } from "../errors.ts";
import { openStore } from "../store/select.ts";
import { isFresh, isUsable, policyFromEnv } from "../token/classify.ts";
import { decodeAccess, decodeRefresh } from "../token/record.ts";
import type { Verb } from "./verb.ts";
import { stdoutText } from "./output.ts";

/** One profile's status, as `--json` prints it. */
export interface ProfileStatus {
  profile: string;
  tenant_url: string | null;
  auth_domain: string | null;
  client_id: string | null;
  store: string | null;
  signed_in: boolean;
  user: { email?: string; username?: string } | null;
  access_token: {
    present: boolean;
    expires_at: string | null;
    expires_in_seconds: number | null;
    fresh: boolean;
    lifetime_known: boolean | null;
  };
  refresh_token: { present: boolean; expires_at: string | null };
  error: string | null;
}

/** The `status` verb. */
export const statusVerb: Verb = {
  name: "status",
  summary: "agent-runner-auth status: who is signed in, until when, and where the tokens are",
  usage: `Usage: agent-runner-auth status [--json] [--profile NAME]

Shows every profile (or only --profile NAME): tenant, auth domain, user, access-token expiry,
refresh token, store, config and log paths. Never prints a token; makes no network request.
Exit 0 when every profile shown is signed in, 1 otherwise.

Examples:
  agent-runner-auth status
  agent-runner-auth status --json | jq '.profiles[0].access_token.expires_in_seconds'`,
  options: { json: { type: "boolean" } },
  run: async (values) => {
    const paths = resolvePaths();
    // Every config problem is handled alike (issue 13 point 7): a missing file, one that is
    // not JSON and a profile with a bad or missing field all exit 3, and `--json` still prints
    // its one object, with the reason in `error`, before the one stderr line.
    let raw: Record<string, unknown> | null = null;
    let configError: ConfigError | null = null;
    try {
      raw = loadConfigObject(paths.config);
      if (!raw) {
        throw new ConfigError(
          `Not configured: ${paths.config} does not exist; run \`agent-runner-auth login --tenant-url URL --auth-domain HOST --client-id ID\``,
        );
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      configError = error;
    }
    const statuses: ProfileStatus[] = [];
    const broken = new Set<string>();
    if (raw) {
      const explicit = values.profile !== undefined || Deno.env.get("AGENT_RUNNER_PROFILE");
      const names = explicit
        ? [selectProfile(values.profile as string | undefined)]
        : profileNames(raw);
      for (const name of names) {
        const { status, configError: bad } = await profileStatus(raw, paths.config, name);
        statuses.push(status);
        if (bad) broken.add(name);
        configError ??= bad;
      }
    }

    if (values.json) {
      stdoutText(
        JSON.stringify(
          {
            version: 1,
            config_path: paths.config,
            log_path: paths.log,
            error: configError?.message ?? null,
            profiles: statuses,
          },
          null,
          2,
        ),
      );
    } else if (statuses.length > 0 || !configError) {
      stdoutText(render(statuses, paths.config, paths.log, broken));
    }
    if (configError) throw configError;
    return statuses.length > 0 && statuses.every((s) => s.signed_in) ? 0 : 1;
  },
};

async function profileStatus(
  raw: Record<string, unknown>,
  path: string,
  profile: string,
): Promise<{ status: ProfileStatus; configError: ConfigError | null }> {
  let configError: ConfigError | null = null;
  const status: ProfileStatus = {
    profile,
    tenant_url: null,
    auth_domain: null,
    client_id: null,
    store: null,
    signed_in: false,
    user: null,
    access_token: {
      present: false,
      expires_at: null,
      expires_in_seconds: null,
      fresh: false,
      lifetime_known: null,
    },
    refresh_token: { present: false, expires_at: null },
    error: null,
  };
  try {
    const loaded = validateConfig(raw, path, profile);
    status.tenant_url = loaded.config.tenant_url;
    status.auth_domain = loaded.authBase.href.replace(/\/$/, "");
    status.client_id = loaded.config.client_id;
    const store = await openStore(loaded);
    status.store = store.backend;
    const items = profileItems(profile);
    const now = Date.now();
    const accessRaw = await store.get(items.access);
    const access = accessRaw ? decodeAccess(accessRaw, now) : null;
    if (access?.ok) {
      const a = access.record;
      status.access_token = {
        present: true,
        expires_at: new Date(a.expiresAt).toISOString(),
        expires_in_seconds: Math.round((a.expiresAt - now) / 1000),
        fresh: isFresh(
          a,
          now,
          policyFromEnv(Deno.env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS")).policy,
        ),
        lifetime_known: a.lifetimeKnown,
      };
      if (a.user && (a.user.email || a.user.username)) {
        status.user = {};
        if (a.user.email) status.user.email = a.user.email;
        if (a.user.username) status.user.username = a.user.username;
      }
    }
    const refreshRaw = await store.get(items.refresh);
    status.refresh_token.present = refreshRaw !== null && decodeRefresh(refreshRaw).ok;
    status.signed_in = status.refresh_token.present ||
      (access?.ok === true && isUsable(access.record, now));
  } catch (error) {
    if (error instanceof ConfigError) configError = error;
    status.error = error instanceof AppError || error instanceof Error
      ? error.message
      : String(error);
  }
  return { status, configError };
}

function render(
  statuses: ProfileStatus[],
  configPath: string,
  logPath: string,
  broken: ReadonlySet<string>,
): string {
  const lines: string[] = [];
  for (const s of statuses) {
    const state = s.signed_in
      ? "signed in"
      : broken.has(s.profile)
      ? "config error"
      : "NOT signed in";
    lines.push(`Profile ${s.profile}: ${state}`);
    if (s.tenant_url) lines.push(`  tenant       ${s.tenant_url}`);
    if (s.auth_domain) lines.push(`  auth domain  ${s.auth_domain}`);
    if (s.user) {
      lines.push(
        `  user         ${
          [s.user.email, s.user.username && `(${s.user.username})`].filter(Boolean).join(" ")
        }`,
      );
    }
    if (s.access_token.present) {
      const secs = s.access_token.expires_in_seconds!;
      const rel = secs >= 0 ? `in ${humanDuration(secs)}` : `${humanDuration(-secs)} ago`;
      lines.push(
        `  access token expires ${s.access_token.expires_at} (${rel})${
          s.access_token.fresh ? "" : ", will be refreshed on next use"
        }`,
      );
    } else if (!s.error) {
      lines.push("  access token none");
    }
    if (!s.error) lines.push(`  refresh token ${s.refresh_token.present ? "present" : "none"}`);
    if (s.store) lines.push(`  store        ${s.store}`);
    if (s.error) lines.push(`  error        ${s.error}`);
    if (!s.signed_in && !s.error) {
      const flag = s.profile === "default" ? "" : ` --profile ${s.profile}`;
      lines.push(`  fix          agent-runner-auth login${flag}`);
    }
  }
  if (statuses.length === 0) lines.push("No profile is configured; run `agent-runner-auth login`.");
  lines.push(`Config ${configPath}`);
  lines.push(`Log    ${logPath}`);
  return lines.join("\n");
}

function humanDuration(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}
