/**
 * `config.json`: parse, validate, merge and write (SPEC.md §3).
 *
 * Rules that shape this module:
 * - Only `login` writes it; `token` only reads. A file that does not parse or validate is
 *   reported with its path, line and field, and is never rewritten.
 * - Unknown fields survive a rewrite (the install wizard or a newer version may add some).
 * - `auth_domain` is a host (https implied) or a URL; plain http only for loopback hosts
 *   (SPEC.md §7, RFC 8252 §8.3).
 *
 * No `node:` or npm import: this is on the cached `token` path (SPEC.md §8).
 *
 * @module
 */

import { ConfigError } from "../errors.ts";
import { jsonErrorLine } from "./json_error.ts";
import { DEFAULT_PROFILE } from "./profile.ts";

/** The fields agent-runner-auth understands. Others are kept in {@linkcode LoadedConfig.raw}. */
export interface Config {
  tenant_url: string;
  auth_domain: string;
  client_id: string;
  scope: string;
  /** A registered loopback callback URL; see {@linkcode DEFAULT_REDIRECT_URIS}. */
  redirect_uri?: string;
  /** Token issuer; Cognito's is `https://cognito-idp.<region>.amazonaws.com/<poolId>`. */
  issuer?: string;
  /** Pinned token store backend (`auto` when absent). */
  store?: string;
  /**
   * `ANTHROPIC_BASE_URL` for `setup claude` when the tenant's proxy does not serve the connect
   * page's `<tenant_url>/anthropic/v1` (Claude Code appends `/v1/messages` to it).
   */
  anthropic_base_url?: string;
}

/** A validated config plus what was derived from it. */
export interface LoadedConfig {
  path: string;
  /** The profile these settings belong to ({@linkcode DEFAULT_PROFILE}: the top level). */
  profile: string;
  /** The whole parsed object, unknown fields included, in file order. */
  raw: Record<string, unknown>;
  /** The object holding this profile's fields: `raw` itself, or `raw.profiles[profile]`. */
  section: Record<string, unknown>;
  config: Config;
  /** Origin (plus optional path) of the auth domain, no trailing slash. */
  authBase: URL;
}

/** The default profile's name, defined with the other profile rules (`profile.ts`). */
export { DEFAULT_PROFILE };

/**
 * The names accepted for `store` in config and for `AGENT_RUNNER_STORE` (SPEC.md §4): `auto`
 * plus every real backend. `src/store/select.ts` opens them (`select_test.ts` checks they agree).
 */
export const STORE_NAMES = [
  "auto",
  "macos-keychain",
  "secret-service",
  "pass",
  "windows-credential-manager",
  "encrypted-file",
] as const;

/** One of {@linkcode STORE_NAMES}. */
export type StoreName = (typeof STORE_NAMES)[number];

/** Scope used when neither the file nor `--scope` gives one. */
export const DEFAULT_SCOPE = "openid email profile";

/**
 * Loopback callbacks tried in order when no `redirect_uri` is configured. Cognito matches
 * callback URLs exactly, port included (research B.2), so these are fixed and documented: a
 * tenant registers all three in the app client.
 */
export const DEFAULT_REDIRECT_URIS: readonly string[] = [
  "http://localhost:47621/callback",
  "http://localhost:47622/callback",
  "http://localhost:47623/callback",
];

/** Whether `hostname` (as `URL.hostname` spells it) is a loopback name or address. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (h === "localhost" || h === "[::1]" || h === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Reads and validates the config file. `null` when the file does not exist.
 * Needs `--allow-read`.
 */
export function loadConfig(path: string, profile = DEFAULT_PROFILE): LoadedConfig | null {
  const raw = loadConfigObject(path);
  return raw === null ? null : validateConfig(raw, path, profile);
}

/** Like {@linkcode loadConfig} but a missing file is an error that says how to create it. */
export function requireConfig(path: string, profile = DEFAULT_PROFILE): LoadedConfig {
  const loaded = loadConfig(path, profile);
  if (!loaded) {
    const flag = profile === DEFAULT_PROFILE ? "" : ` --profile ${profile}`;
    throw new ConfigError(
      `Not configured: ${path} does not exist; run \`agent-runner-auth login${flag} --tenant-url URL --auth-domain HOST --client-id ID\``,
    );
  }
  return loaded;
}

/** Names of every profile in the file: the default (when its fields are there) and `profiles.*`. */
export function profileNames(raw: Record<string, unknown>): string[] {
  const names: string[] = [];
  if (raw.client_id !== undefined || raw.auth_domain !== undefined) names.push(DEFAULT_PROFILE);
  const profiles = raw.profiles;
  if (typeof profiles === "object" && profiles !== null && !Array.isArray(profiles)) {
    for (const name of Object.keys(profiles)) if (name !== DEFAULT_PROFILE) names.push(name);
  }
  return names;
}

/** Parses config text; every error names `path`, and the line or field at fault. */
export function parseConfig(text: string, path: string, profile = DEFAULT_PROFILE): LoadedConfig {
  return validateConfig(parseConfigObject(text, path), path, profile);
}

/**
 * Reads the file as a JSON object without checking fields: what `login` merges its flags
 * into (a file the wizard started may lack fields; a file that is not JSON is still refused).
 * `null` when the file does not exist. Needs `--allow-read`.
 */
export function loadConfigObject(path: string): Record<string, unknown> | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    const why = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`Cannot read ${path}: ${oneLine(why)}`);
  }
  return parseConfigObject(text, path);
}

/** The top-level JSON object of a config text; errors name `path` and the line. */
export function parseConfigObject(text: string, path: string): Record<string, unknown> {
  // Windows Notepad saves a byte-order mark; JSON.parse would call it an unexpected token.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") throw new ConfigError(`${path}: the file is empty`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `${path}:${jsonErrorLine(text)}: invalid JSON (${jsonErrorReason(error)})`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${path}: expected a JSON object at the top level`);
  }
  return value as Record<string, unknown>;
}

/** Validates an already parsed object; see {@linkcode parseConfig}. */
export function validateConfig(
  raw: Record<string, unknown>,
  path: string,
  profile = DEFAULT_PROFILE,
): LoadedConfig {
  const section = profileSection(raw, path, profile, false);
  const prefix = profile === DEFAULT_PROFILE ? "" : `profiles.${profile}.`;
  const field = (name: string, problem: string) =>
    new ConfigError(`${path}: field "${prefix}${name}" ${problem}`);
  const str = (name: string, required: boolean): string | undefined => {
    const v = section[name];
    if (v === undefined || v === null) {
      if (required) throw field(name, "is missing");
      return undefined;
    }
    if (typeof v !== "string") throw field(name, `must be a string, not ${describe(v)}`);
    if (v.trim() === "") throw field(name, "is empty");
    return v.trim();
  };

  const tenantUrl = str("tenant_url", true)!;
  const tenant = parseUrl(
    tenantUrl,
    () => field("tenant_url", `is not a URL: ${quote(tenantUrl)}`),
  );
  requireSafeScheme(tenant, () => field("tenant_url", "must use https (http only for loopback)"));

  const authDomain = str("auth_domain", true)!;
  const authBase = parseAuthDomain(authDomain, (p) => field("auth_domain", p));

  const clientId = str("client_id", true)!;
  if (/\s/.test(clientId)) throw field("client_id", "must not contain spaces");

  const scope = str("scope", false) ?? DEFAULT_SCOPE;

  const redirectUri = str("redirect_uri", false);
  if (redirectUri !== undefined) {
    const problem = redirectUriProblem(redirectUri);
    if (problem) throw field("redirect_uri", problem);
  }

  const issuer = str("issuer", false);
  if (issuer !== undefined) {
    const u = parseUrl(issuer, () => field("issuer", `is not a URL: ${quote(issuer)}`));
    requireSafeScheme(u, () => field("issuer", "must use https (http only for loopback)"));
  }

  const store = str("store", false);
  if (store !== undefined && !(STORE_NAMES as readonly string[]).includes(store)) {
    throw field("store", `must be one of ${STORE_NAMES.join(", ")}; got ${quote(store)}`);
  }

  const anthropicBaseUrl = str("anthropic_base_url", false);
  if (anthropicBaseUrl !== undefined) {
    const problem = baseUrlProblem(anthropicBaseUrl);
    if (problem) throw field("anthropic_base_url", problem);
  }

  const config: Config = {
    tenant_url: tenantUrl,
    auth_domain: authDomain,
    client_id: clientId,
    scope,
  };
  if (redirectUri !== undefined) config.redirect_uri = redirectUri;
  if (issuer !== undefined) config.issuer = issuer;
  if (store !== undefined) config.store = store;
  if (anthropicBaseUrl !== undefined) config.anthropic_base_url = anthropicBaseUrl;
  return { path, profile, raw, section, config, authBase };
}

/**
 * Why `value` cannot be Claude Code's `ANTHROPIC_BASE_URL`, or `null` when it can: validated
 * like `tenant_url` (https; http only for loopback), and without query, fragment or
 * credentials, since Claude appends `/v1/messages` to it.
 */
export function baseUrlProblem(value: string): string | null {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `is not a URL: ${quote(value)}`;
  }
  if (!(u.protocol === "https:" || (u.protocol === "http:" && isLoopbackHost(u.hostname)))) {
    return "must use https (http only for loopback)";
  }
  if (u.search !== "" || u.hash !== "" || u.username !== "" || u.password !== "") {
    return "must not carry a query, fragment or credentials";
  }
  return null;
}

/** Why `uri` cannot be a loopback redirect URI (RFC 8252 §7.3), or `null` when it can. */
export function redirectUriProblem(uri: string): string | null {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return `is not a URL: ${quote(uri)}`;
  }
  if (u.protocol !== "http:") return "must be an http:// loopback URL (RFC 8252 §7.3)";
  if (!isLoopbackHost(u.hostname)) return "must point at localhost, 127.0.0.1 or [::1]";
  if (u.port === "") return "must name a port, registered in the app client";
  if (u.hash !== "") return "must not have a fragment";
  return null;
}

function parseAuthDomain(value: string, fail: (problem: string) => ConfigError): URL {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  const u = parseUrl(
    hasScheme ? value : `https://${value}`,
    () => fail(`is not a host or URL: ${quote(value)}`),
  );
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw fail(`must be https (or http for loopback), not ${u.protocol}`);
  }
  if (u.protocol === "http:" && !isLoopbackHost(u.hostname)) {
    throw fail(`may use plain http only for a loopback host, not "${u.hostname}"`);
  }
  if (u.search !== "" || u.hash !== "" || u.username !== "" || u.password !== "") {
    throw fail("must not carry a query, fragment or credentials");
  }
  // "/" is what a bare host gets and would stay "/": no regular expression and no re-parse
  // for the common case, on every `token` call (issue 14).
  if (u.pathname !== "/") u.pathname = u.pathname.replace(/\/+$/, "");
  return u;
}

function requireSafeScheme(u: URL, fail: () => ConfigError): void {
  if (u.protocol === "https:") return;
  if (u.protocol === "http:" && isLoopbackHost(u.hostname)) return;
  throw fail();
}

function parseUrl(value: string, fail: () => ConfigError): URL {
  try {
    return new URL(value);
  } catch {
    throw fail();
  }
}

/** A value for an error message: JSON-quoted (no raw line breaks), cut at 60 characters. */
function quote(value: string): string {
  return value.length > 60 ? `${JSON.stringify(value.slice(0, 60))}…` : JSON.stringify(value);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** V8's reason without its excerpt of the file (which could hold a pasted secret). */
function jsonErrorReason(error: unknown): string {
  const msg = error instanceof Error ? error.message : String(error);
  const reason = /^(Unexpected [^,]*|Expected [^,(]*|Bad [^,(]*|Unterminated [^,(]*)/.exec(msg)
    ?.[1];
  return reason ? oneLine(reason).replace(/ in JSON at position \d+.*$/, "") : "not valid JSON";
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

/**
 * Merges `updates` into the loaded object, keeping unknown fields and their order, and
 * validates the result. `undefined` values leave a field as it was.
 */
export function mergeConfig(
  existing: Record<string, unknown> | null,
  updates: Partial<Config>,
  path: string,
  profile = DEFAULT_PROFILE,
): LoadedConfig {
  const raw: Record<string, unknown> = structuredClone(existing ?? {});
  const section = profileSection(raw, path, profile, true);
  for (const [key, value] of Object.entries(updates)) {
    if (value !== undefined) section[key] = value;
  }
  return validateConfig(raw, path, profile);
}

/**
 * The object holding `profile`'s fields inside `raw`; with `create`, an empty one is added
 * under `profiles` when missing (`login --profile NEW`).
 */
function profileSection(
  raw: Record<string, unknown>,
  path: string,
  profile: string,
  create: boolean,
): Record<string, unknown> {
  if (profile === DEFAULT_PROFILE) return raw;
  let profiles = raw.profiles;
  if (profiles === undefined && create) profiles = raw.profiles = {};
  if (typeof profiles !== "object" || profiles === null || Array.isArray(profiles)) {
    if (profiles === undefined) {
      throw new ConfigError(
        `${path}: there is no profile "${profile}"; run \`agent-runner-auth login --profile ${profile} …\``,
      );
    }
    throw new ConfigError(`${path}: field "profiles" must be an object`);
  }
  const map = profiles as Record<string, unknown>;
  if (map[profile] === undefined && create) map[profile] = {};
  const section = map[profile];
  if (section === undefined) {
    throw new ConfigError(
      `${path}: there is no profile "${profile}"; run \`agent-runner-auth login --profile ${profile} …\``,
    );
  }
  if (typeof section !== "object" || section === null || Array.isArray(section)) {
    throw new ConfigError(`${path}: field "profiles.${profile}" must be an object`);
  }
  return section as Record<string, unknown>;
}

/**
 * Writes the config atomically: temp file (0600) + fsync + rename, in a 0700 directory, so a
 * crash never leaves half a file. Needs `--allow-read --allow-write`.
 */
export async function writeConfig(loaded: LoadedConfig): Promise<void> {
  const dir = loaded.path.replace(/[\\/][^\\/]*$/, "");
  await ensurePrivateDir(dir);
  await writeFileAtomic(loaded.path, JSON.stringify(loaded.raw, null, 2) + "\n");
}

/** Creates `dir` (and parents) with mode 0700 when missing. Needs `--allow-write`. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * temp + fsync + rename, so a crash never leaves half a file. The temp file is created 0600 and
 * given `mode` (default 0600) before the rename. Needs `--allow-write`.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    if (mode !== 0o600 && Deno.build.os !== "windows") await Deno.chmod(tmp, mode & 0o7777);
    await file.sync();
  } catch (error) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  file.close();
  try {
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}
