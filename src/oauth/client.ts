/**
 * Every OAuth request and response check goes through oauth4webapi (STYLE.md, panva): this
 * module only adapts it to Cognito and to our error types.
 *
 * Cognito specifics (SPEC.md §5, research B.1–B.7):
 * - Endpoints live on the auth domain; the issuer (`https://cognito-idp.<region>.amazonaws.com/
 *   <poolId>`) is another host and discovery is not served on the auth domain, so no discovery:
 *   the endpoints are built from the auth domain, and the issuer is either configured or
 *   learned from the first ID token received directly from the token endpoint over TLS
 *   (OIDC Core §3.1.3.7 lets TLS stand in for the signature in that case).
 * - Public client: `client_id` in the body, no secret (`None()` client auth).
 * - Errors are HTTP 400 `{"error": …}` without a description: {@linkcode describeOAuthError}
 *   turns each into a sentence.
 *
 * Loaded lazily: never on the cached `token` path (SPEC.md §8).
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import type { LoadedConfig } from "../config/config.ts";
import { isLoopbackHost } from "../config/config.ts";
import { AuthError, NetworkError } from "../errors.ts";
import { debug } from "../log.ts";
import { patientDeadline } from "../../ffi/timeout.ts";
import {
  type AccessRecord,
  isTokenLike,
  jwtPayload,
  UNKNOWN_LIFETIME_MS,
  type UserInfo,
} from "../token/record.ts";

/** What a successful grant gives us, already in store-record shape. */
export interface GrantResult {
  access: AccessRecord;
  /** Present when the server issued one (code grant; refresh grant with rotation on). */
  refreshToken?: string;
  /** The ID token's issuer, so `login` can pin it in config. */
  issuer?: string;
}

/** Per-request options. */
export interface RequestOptions {
  /** Abort a request after this long. */
  timeoutMs: number;
  now?: () => number;
}

/** The auth domain's endpoints as an oauth4webapi authorization server. */
export function authorizationServer(
  loaded: LoadedConfig,
  issuer?: string,
): oauth.AuthorizationServer {
  const base = loaded.authBase.href.replace(/\/$/, "");
  return {
    issuer: issuer ?? loaded.config.issuer ?? base,
    authorization_endpoint: `${base}/oauth2/authorize`,
    token_endpoint: `${base}/oauth2/token`,
    revocation_endpoint: `${base}/oauth2/revoke`,
    userinfo_endpoint: `${base}/oauth2/userInfo`,
    end_session_endpoint: `${base}/logout`,
  };
}

/** The public client; clock skew is filled in per response from the server's `Date`. */
export function publicClient(loaded: LoadedConfig): oauth.Client {
  return { client_id: loaded.config.client_id, [oauth.clockTolerance]: 60 };
}

/**
 * oauth4webapi options: timeout, and plain http only for a loopback auth domain. `signal`, when
 * given, replaces the plain timeout (a {@linkcode patientDeadline}).
 */
export function httpOptions(loaded: LoadedConfig, timeoutMs: number, signal?: AbortSignal) {
  const insecure = loaded.authBase.protocol === "http:" && isLoopbackHost(loaded.authBase.hostname);
  return {
    signal: signal ?? AbortSignal.timeout(timeoutMs),
    ...(insecure ? { [oauth.allowInsecureRequests]: true } : {}),
  };
}

/** Runs the refresh grant once (RFC 6749 §6). Throws a retryable `NetworkError` when trying again may help. */
export function refreshGrant(
  loaded: LoadedConfig,
  refreshToken: string,
  options: RequestOptions,
): Promise<GrantResult> {
  return grant(
    loaded,
    options,
    "refresh",
    (as, client, http) =>
      oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, http),
    (as, client, response) => oauth.processRefreshTokenResponse(as, client, response),
  );
}

/** Exchanges an authorization code (RFC 6749 §4.1.3 with RFC 7636 PKCE), checking the nonce. */
export function exchangeCode(
  loaded: LoadedConfig,
  callback: URLSearchParams,
  redirectUri: string,
  codeVerifier: string,
  expectedNonce: string,
  options: RequestOptions,
): Promise<GrantResult> {
  return grant(
    loaded,
    options,
    "code exchange",
    (as, client, http) =>
      oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.None(),
        callback,
        redirectUri,
        codeVerifier,
        http,
      ),
    (as, client, response) =>
      oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce }),
  );
}

/**
 * One token-endpoint round trip: request, retryable-status mapping, issuer learned from the
 * ID token, server clock applied, oauth4webapi's validation, and the local-clock lifetime.
 */
async function grant(
  loaded: LoadedConfig,
  options: RequestOptions,
  what: "refresh" | "code exchange",
  request: (
    as: oauth.AuthorizationServer,
    client: oauth.Client,
    http: ReturnType<typeof httpOptions>,
  ) => Promise<Response>,
  process: (
    as: oauth.AuthorizationServer,
    client: oauth.Client,
    response: Response,
  ) => Promise<oauth.TokenEndpointResponse>,
): Promise<GrantResult> {
  const now = options.now ?? Date.now;
  const client = publicClient(loaded);
  const started = now();
  // Counts only time this process was run: a grant the server carried out is not thrown away
  // because a busy machine ran our timer late (with rotation on, that ends the session).
  const deadline = patientDeadline(options.timeoutMs);
  try {
    const response = await send(
      "token endpoint",
      () =>
        request(
          authorizationServer(loaded),
          client,
          httpOptions(loaded, options.timeoutMs, deadline.signal),
        ),
      options.timeoutMs,
    );
    const as = authorizationServer(loaded, expectedIssuer(loaded, await peekIssuer(response)));
    applyServerClock(client, response, now);
    const result = await processGrant(what, () => process(as, client, response));
    return toGrantResult(result, started, as.issuer);
  } finally {
    deadline.cancel();
  }
}

/**
 * Sends a request, mapping transport failures and retryable statuses (5xx, 429) to
 * a retryable `NetworkError` before oauth4webapi sees the body.
 */
export async function send(
  what: string,
  request: () => Promise<Response>,
  timeoutMs: number,
): Promise<Response> {
  let response: Response;
  const started = performance.now();
  try {
    response = await request();
  } catch (error) {
    debug(`${what}: no answer after ${Math.round(performance.now() - started)} ms`);
    throw transportError(what, error, timeoutMs);
  }
  debug(`${what}: HTTP ${response.status} in ${Math.round(performance.now() - started)} ms`);
  if (response.status >= 500 || response.status === 429) {
    await response.body?.cancel();
    const retryAfter = retryAfterMs(response.headers.get("retry-after"));
    // A 429 whose Retry-After is too long to wait for ends the call: say why and for how long.
    const detail = response.status !== 429
      ? ""
      : ` (too many requests${
        retryAfter === undefined ? "" : `; it asks to retry after ${Math.ceil(retryAfter / 1000)} s`
      })`;
    throw new NetworkError(`The ${what} answered HTTP ${response.status}${detail}`, {
      retryable: true,
      retryAfterMs: retryAfter,
    });
  }
  return response;
}

function transportError(what: string, error: unknown, timeoutMs: number): NetworkError {
  if (
    error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError")
  ) {
    return new NetworkError(`The ${what} did not answer within ${timeoutMs} ms`, {
      retryable: true,
    });
  }
  if (error instanceof oauth.OperationProcessingError || error instanceof TypeError) {
    const cause = error.cause instanceof Error ? error.cause.message : error.message;
    // fetch's TypeError names the URL but never a token; keep only its first line.
    return new NetworkError(`Cannot reach the ${what}: ${cause.split("\n")[0]}`, {
      retryable: true,
    });
  }
  return new NetworkError(`Cannot reach the ${what}: ${String(error).split("\n")[0]}`, {
    retryable: true,
  });
}

async function processGrant(
  what: "refresh" | "code exchange",
  process: () => Promise<oauth.TokenEndpointResponse>,
): Promise<oauth.TokenEndpointResponse> {
  let result: oauth.TokenEndpointResponse;
  try {
    result = await process();
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      throw new AuthError(describeOAuthError(error.error, what), error.error);
    }
    if (error instanceof oauth.OperationProcessingError) {
      throw new NetworkError(
        `The token endpoint's answer to the ${what} was invalid: ${error.message}`,
      );
    }
    throw error;
  }
  // `token` prints the access token as the whole of stdout, and Claude Code rejects one with
  // inner whitespace (SPEC.md §1.1); record.ts refuses to read such a token back. So it is
  // refused here, before it is stored or printed (found by test/fault_refresh_test.ts).
  if (!isTokenLike(result.access_token)) {
    throw new NetworkError(
      `The token endpoint's answer to the ${what} was invalid: the access token is empty or ` +
        "contains spaces or control characters",
    );
  }
  return result;
}

/** A sentence per OAuth error code; Cognito rarely sends `error_description` (research B.4). */
export function describeOAuthError(code: string, during: string): string {
  switch (code) {
    case "invalid_grant":
      return during === "refresh"
        ? "The sign-in session has expired or was revoked (invalid_grant)"
        : "The authorization code was rejected: expired, already used, or the redirect URI differs (invalid_grant)";
    case "invalid_client":
      return "The auth domain does not know this client_id, or the client needs a secret (invalid_client): check client_id in the config";
    case "unauthorized_client":
      return `The app client is not allowed to use this grant (unauthorized_client): enable the authorization code grant and refresh tokens for it, and check the redirect URI`;
    case "invalid_request":
      return `The auth domain rejected the ${during} request as malformed (invalid_request)`;
    case "unsupported_grant_type":
      return "The auth domain does not support this grant type (unsupported_grant_type)";
    case "invalid_scope":
      return "A requested scope is not allowed for this app client (invalid_scope): check scope in the config";
    case "access_denied":
      return "The sign-in was denied (access_denied)";
    default:
      return `The auth domain refused the ${during} (${
        code.replace(/[^\x21-\x7e]/g, "?").slice(0, 64)
      })`;
  }
}

function toGrantResult(
  r: oauth.TokenEndpointResponse,
  started: number,
  issuer: string,
): GrantResult {
  const access = r.access_token;
  let lifetimeMs: number | undefined;
  if (typeof r.expires_in === "number" && r.expires_in > 0) lifetimeMs = r.expires_in * 1000;
  if (lifetimeMs === undefined) {
    // No expires_in: the JWT's own exp - iat is on the server's clock at both ends.
    const p = jwtPayload(access);
    if (p && typeof p.exp === "number" && typeof p.iat === "number" && p.exp > p.iat) {
      lifetimeMs = (p.exp - p.iat) * 1000;
    }
  }
  const record: AccessRecord = {
    token: access,
    obtainedAt: started,
    expiresAt: started + (lifetimeMs ?? UNKNOWN_LIFETIME_MS),
    lifetimeKnown: lifetimeMs !== undefined,
  };
  const user = userFromIdToken(r);
  if (user) record.user = user;
  const result: GrantResult = { access: record };
  if (typeof r.refresh_token === "string" && r.refresh_token !== "") {
    result.refreshToken = r.refresh_token;
  }
  if (r.id_token) result.issuer = issuer;
  return result;
}

function userFromIdToken(r: oauth.TokenEndpointResponse): UserInfo | undefined {
  const claims = oauth.getValidatedIdTokenClaims(r);
  return claims ? userFromClaims(claims) : undefined;
}

/** The display claims of an ID token or a userInfo answer (Cognito's names, then OIDC's). */
function userFromClaims(claims: Record<string, unknown>): UserInfo {
  const user: UserInfo = {};
  if (typeof claims.sub === "string") user.sub = claims.sub;
  if (typeof claims.email === "string") user.email = claims.email;
  // Cognito's ID token says `cognito:username`, its userInfo `username`; OIDC says
  // `preferred_username`.
  const username = claims["cognito:username"] ?? claims.username ?? claims.preferred_username;
  if (typeof username === "string") user.username = username;
  return user;
}

/** True when `user` names someone (`status` and `login` can show an email or a username). */
export function namesUser(user: UserInfo | undefined): boolean {
  return Boolean(user?.email || user?.username);
}

/**
 * Asks `/oauth2/userInfo` (OIDC Core §5.3) who the access token belongs to, for providers
 * that keep profile claims out of the ID token (the OpenID default for the code flow, §5.4;
 * issue 13 item 8). Only for display: a failure (no `openid` scope, timeout, a `sub` other
 * than the ID token's) is ignored with a debug line and the user stays unknown.
 */
export async function fetchUserInfo(
  loaded: LoadedConfig,
  accessToken: string,
  expectedSub: string | undefined,
  options: RequestOptions,
): Promise<UserInfo | undefined> {
  const as = authorizationServer(loaded);
  const client = publicClient(loaded);
  const started = performance.now();
  try {
    const response = await oauth.userInfoRequest(
      as,
      client,
      accessToken,
      httpOptions(loaded, options.timeoutMs),
    );
    const claims = await oauth.processUserInfoResponse(
      as,
      client,
      expectedSub ?? oauth.skipSubjectCheck,
      response,
    );
    const user = userFromClaims(claims as unknown as Record<string, unknown>);
    debug(
      `userInfo: HTTP ${response.status} in ${Math.round(performance.now() - started)} ms, ${
        namesUser(user) ? "names the user" : "names no email or username"
      }`,
    );
    return namesUser(user) ? user : undefined;
  } catch (error) {
    const why = error instanceof oauth.WWWAuthenticateChallengeError
      ? `HTTP ${error.status}`
      : error instanceof Error
      ? `${error.name}: ${error.message.split("\n")[0]}`
      : String(error);
    debug(
      `userInfo failed after ${
        Math.round(performance.now() - started)
      } ms (${why}); the user stays unknown`,
    );
    return undefined;
  }
}

/**
 * The `iss` of the ID token in a successful token response, read from a clone so the original
 * body still goes to oauth4webapi, which then checks the ID token against it (plus `aud`,
 * `exp`, `iat`, `nonce`).
 */
async function peekIssuer(response: Response): Promise<string | undefined> {
  if (response.status !== 200) return undefined;
  try {
    const body = await response.clone().json();
    if (typeof body?.id_token !== "string") return undefined;
    const iss = jwtPayload(body.id_token)?.iss;
    return typeof iss === "string" ? iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The issuer the ID token must name. A pinned `issuer` (config) is the only one accepted, at
 * login and at every refresh: an auth domain that now answers for another user pool (a
 * redirected or replaced `auth_domain`) is refused before anything is stored (issue 11 #3).
 * Without a pin, the token's own `iss` is taken (and `login` then pins it).
 *
 * @throws {AuthError} `issuer_mismatch` naming the config field and both values; the caller
 * keeps every stored token (nothing was saved yet).
 */
export function expectedIssuer(
  loaded: LoadedConfig,
  tokenIssuer: string | undefined,
): string | undefined {
  const pinned = loaded.config.issuer;
  if (pinned === undefined) return tokenIssuer;
  if (tokenIssuer !== undefined && tokenIssuer !== pinned) {
    throw new AuthError(
      `The ID token's issuer ${JSON.stringify(printable(tokenIssuer))} is not the pinned ` +
        `issuer ${JSON.stringify(pinned)} (field "issuer" in ${loaded.path}); the stored ` +
        "tokens are kept. If the user pool really changed, fix issuer and run " +
        "`agent-runner-auth login`",
      ISSUER_MISMATCH,
    );
  }
  return pinned;
}

/** {@linkcode AuthError.oauthError} of a pinned-issuer mismatch (not an OAuth error code). */
export const ISSUER_MISMATCH = "issuer_mismatch";

/** A server-chosen string cut to a sane length, control characters replaced, for messages. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);
}

/** Tolerates a skewed local clock for ID-token time checks, using the response's `Date`. */
function applyServerClock(client: oauth.Client, response: Response, now: () => number): void {
  const date = Date.parse(response.headers.get("date") ?? "");
  if (Number.isFinite(date)) client[oauth.clockSkew] = Math.round((date - now()) / 1000);
}

function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

/**
 * Revokes a refresh token (RFC 7009; Cognito revokes the access and ID tokens issued from it
 * too, research B.7). 200 also for an unknown or already revoked token. A 503 or transport
 * failure throws a retryable `NetworkError`; `unsupported_token_type` and `invalid_request`
 * (revocation disabled for the client) throw an `AuthError` with a sentence.
 */
export async function revokeRefreshToken(
  loaded: LoadedConfig,
  refreshToken: string,
  options: RequestOptions,
): Promise<void> {
  const response = await send(
    "revocation endpoint",
    () =>
      oauth.revocationRequest(
        authorizationServer(loaded),
        publicClient(loaded),
        oauth.None(),
        refreshToken,
        {
          ...httpOptions(loaded, options.timeoutMs),
          additionalParameters: { token_type_hint: "refresh_token" },
        },
      ),
    options.timeoutMs,
  );
  try {
    await oauth.processRevocationResponse(response);
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      const sentence = error.error === "unsupported_token_type"
        ? "The auth domain refused to revoke the token: it is not a refresh token (unsupported_token_type)"
        : error.error === "invalid_request"
        ? "The auth domain refused the revocation (invalid_request): token revocation may be disabled for this app client"
        : describeOAuthError(error.error, "revocation");
      throw new AuthError(sentence, error.error);
    }
    if (error instanceof oauth.OperationProcessingError) {
      throw new NetworkError(`The revocation endpoint's answer was invalid: ${error.message}`);
    }
    throw error;
  }
}
