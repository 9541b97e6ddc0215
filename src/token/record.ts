/**
 * What goes into the two keychain items (SPEC.md §4).
 *
 * Each item holds one token in a small JSON envelope, so the access-token item carries its
 * expiry (opaque access tokens work, and `status` needs no network) and the user it belongs
 * to. The ID token itself is not kept: only the `email`/`username` claims `status` shows.
 *
 * Reading is forgiving: a bare token (put there by hand or by another tool) is accepted, a
 * JWT's `exp` is used when there is no envelope, and anything unreadable is reported as
 * corrupt rather than taken for a token.
 *
 * @module
 */

/** Envelope version; bump when the shape changes incompatibly. */
const VERSION = 1;

/** Who the tokens belong to, from the ID token (never the token itself). */
export interface UserInfo {
  sub?: string;
  email?: string;
  username?: string;
}

/** The access token plus what we know about its lifetime, in local-clock milliseconds. */
export interface AccessRecord {
  token: string;
  /** When it stops being valid, on this machine's clock (derived from `expires_in`). */
  expiresAt: number;
  /** When we received it, on this machine's clock. */
  obtainedAt: number;
  /** False when the server gave no lifetime and {@linkcode UNKNOWN_LIFETIME_MS} was assumed. */
  lifetimeKnown: boolean;
  user?: UserInfo;
}

/** The refresh token; Cognito's are opaque encrypted blobs, never parsed (research B.5). */
export interface RefreshRecord {
  token: string;
  obtainedAt: number;
}

/**
 * Lifetime assumed for an access token whose lifetime is unknown (no `expires_in`, not a JWT
 * with `exp`). Short on purpose: guessing long would hand out dead tokens.
 */
export const UNKNOWN_LIFETIME_MS = 15 * 60_000;

/** Result of decoding an item: a record, or why it could not be read. */
export type Decoded<T> = { ok: true; record: T } | { ok: false; reason: string };

/** Serializes an access record for the store. */
export function encodeAccess(r: AccessRecord): string {
  const out: Record<string, unknown> = {
    v: VERSION,
    access_token: r.token,
    expires_at: Math.floor(r.expiresAt / 1000),
    obtained_at: Math.floor(r.obtainedAt / 1000),
    lifetime_known: r.lifetimeKnown,
  };
  if (r.user && Object.keys(r.user).length > 0) out.user = r.user;
  return JSON.stringify(out);
}

/** Serializes a refresh record for the store. */
export function encodeRefresh(r: RefreshRecord): string {
  return JSON.stringify({
    v: VERSION,
    refresh_token: r.token,
    obtained_at: Math.floor(r.obtainedAt / 1000),
  });
}

/** Reads an access-token item; `now` dates a bare token whose age is unknown. */
export function decodeAccess(value: string, now: number): Decoded<AccessRecord> {
  const trimmed = value.trim();
  if (!trimmed.startsWith("{")) {
    if (!isTokenLike(trimmed)) return { ok: false, reason: "not a token" };
    const exp = jwtExpiry(trimmed);
    // A bare token of unknown age: trust a JWT's own exp, otherwise treat it as stale.
    if (exp) return { ok: true, record: { token: trimmed, ...exp, lifetimeKnown: true } };
    return {
      ok: true,
      record: { token: trimmed, expiresAt: now, obtainedAt: now, lifetimeKnown: false },
    };
  }
  const obj = parseObject(trimmed);
  if (!obj) return { ok: false, reason: "not valid JSON" };
  const token = obj.access_token;
  const expiresAt = obj.expires_at;
  const obtainedAt = obj.obtained_at;
  if (typeof token !== "string" || !isTokenLike(token)) {
    return { ok: false, reason: "no access_token" };
  }
  if (!isFiniteNumber(expiresAt) || !isFiniteNumber(obtainedAt)) {
    return { ok: false, reason: "no expires_at/obtained_at" };
  }
  const record: AccessRecord = {
    token,
    expiresAt: expiresAt * 1000,
    obtainedAt: obtainedAt * 1000,
    lifetimeKnown: obj.lifetime_known !== false,
  };
  const user = readUser(obj.user);
  if (user) record.user = user;
  return { ok: true, record };
}

/** Reads a refresh-token item. */
export function decodeRefresh(value: string): Decoded<RefreshRecord> {
  const trimmed = value.trim();
  if (!trimmed.startsWith("{")) {
    return isTokenLike(trimmed)
      ? { ok: true, record: { token: trimmed, obtainedAt: 0 } }
      : { ok: false, reason: "not a token" };
  }
  const obj = parseObject(trimmed);
  if (!obj) return { ok: false, reason: "not valid JSON" };
  const token = obj.refresh_token;
  if (typeof token !== "string" || !isTokenLike(token)) {
    return { ok: false, reason: "no refresh_token" };
  }
  const obtained = obj.obtained_at;
  return {
    ok: true,
    record: { token, obtainedAt: isFiniteNumber(obtained) ? obtained * 1000 : 0 },
  };
}

/**
 * A token Claude Code will accept: non-empty, printable ASCII, no whitespace (Claude rejects
 * output with an inner space or line break, SPEC.md §1.1).
 */
export function isTokenLike(s: string): boolean {
  return s.length > 0 && /^[\x21-\x7e]+$/.test(s);
}

/**
 * The unverified payload of a JWT, or `null`. Used only to read lifetimes and display
 * claims of tokens that came straight from the token endpoint over TLS; never to authorize.
 */
export function jwtPayload(token: string): Record<string, unknown> | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    // The builtin decoder: `Uint8Array.from(atob(…), fn)` costs ~3 ms cold (issue 14).
    const bytes = Uint8Array.fromBase64(parts[1], { alphabet: "base64url" });
    return parseObject(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return null;
  }
}

function jwtExpiry(token: string): { expiresAt: number; obtainedAt: number } | null {
  const p = jwtPayload(token);
  if (!p || !isFiniteNumber(p.exp)) return null;
  const iat = isFiniteNumber(p.iat) ? p.iat : p.exp - UNKNOWN_LIFETIME_MS / 1000;
  return { expiresAt: p.exp * 1000, obtainedAt: iat * 1000 };
}

function readUser(v: unknown): UserInfo | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const user: UserInfo = {};
  for (const k of ["sub", "email", "username"] as const) {
    if (typeof o[k] === "string") user[k] = o[k] as string;
  }
  return Object.keys(user).length > 0 ? user : undefined;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}
