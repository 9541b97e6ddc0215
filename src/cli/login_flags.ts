/**
 * `login`'s flags checked as flags, before they are merged into the config (issue 13 point 2):
 * a bad value is a usage error (exit 2) naming the flag, even when `config.json` does not exist
 * yet, and every required flag that neither the command line nor the file provides is named in
 * one line, not one per run. A problem in a field the user did not pass stays a config error
 * (exit 3) naming the file, reported by the merge itself.
 *
 * @module
 */

import { DEFAULT_PROFILE, validateConfig } from "../config/config.ts";
import { ConfigError, UsageError } from "../errors.ts";
import type { VerbValues } from "./verb.ts";

/** The config field each `login` flag sets. */
export const LOGIN_FLAGS = {
  tenant_url: "--tenant-url",
  auth_domain: "--auth-domain",
  client_id: "--client-id",
  scope: "--scope",
  redirect_uri: "--redirect-uri",
} as const;

/** A config field `login` can set from a flag. */
export type LoginField = keyof typeof LOGIN_FLAGS;

/** The fields a login cannot do without (`scope` and `redirect_uri` have defaults). */
const REQUIRED: readonly LoginField[] = ["tenant_url", "auth_domain", "client_id"];

/** Valid stand-ins, so that one flag is judged alone by the config's own rules. */
const STAND_INS: Record<string, string> = {
  tenant_url: "https://tenant.example",
  auth_domain: "auth.example",
  client_id: "client",
};

/** The flags as config fields; `undefined` for a flag not given. */
export function loginUpdates(values: VerbValues): Record<LoginField, string | undefined> {
  const out = {} as Record<LoginField, string | undefined>;
  for (const [field, flag] of Object.entries(LOGIN_FLAGS)) {
    const v = values[flag.slice(2)];
    out[field as LoginField] = typeof v === "string" ? v : undefined;
  }
  return out;
}

/**
 * Throws a {@linkcode UsageError} for the first flag whose value the config would refuse
 * (`login: --tenant-url must use https (http only for loopback)`), or for every required flag
 * missing from both the command line and `existing` (the file's object, `null` when absent).
 */
export function checkLoginFlags(
  updates: Record<LoginField, string | undefined>,
  existing: Record<string, unknown> | null,
  path: string,
  profile = DEFAULT_PROFILE,
): void {
  for (const [field, flag] of Object.entries(LOGIN_FLAGS)) {
    const value = updates[field as LoginField];
    if (value === undefined) continue;
    try {
      validateConfig({ ...STAND_INS, [field]: value }, path);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const problem = error.message.replace(`${path}: field "${field}" `, "");
      throw new UsageError(`login: ${flag} ${problem}`);
    }
  }
  const section = sectionOf(existing, profile);
  const missing = REQUIRED.filter((f) => updates[f] === undefined && !present(section?.[f]));
  if (missing.length === 0) return;
  const flags = missing.map((f) => `${LOGIN_FLAGS[f]} ${placeholder(f)}`);
  const where = existing === null
    ? `${path} does not exist yet`
    : section === null
    ? `${path} has no profile "${profile}" yet`
    : `${path} has no ${missing.join(", ")}`;
  throw new UsageError(`login: missing ${joinAnd(flags)} (${where})`);
}

function sectionOf(
  raw: Record<string, unknown> | null,
  profile: string,
): Record<string, unknown> | null {
  if (raw === null) return null;
  if (profile === DEFAULT_PROFILE) return raw;
  const section = (raw.profiles as Record<string, unknown> | undefined)?.[profile];
  return typeof section === "object" && section !== null && !Array.isArray(section)
    ? section as Record<string, unknown>
    : null;
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null && !(typeof v === "string" && v.trim() === "");
}

function placeholder(field: LoginField): string {
  return field === "tenant_url" ? "URL" : field === "auth_domain" ? "HOST" : "ID";
}

function joinAnd(items: string[]): string {
  return items.length <= 1
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}
