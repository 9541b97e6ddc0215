/**
 * A Cognito-compatible authorization server for tests: the hosted-UI endpoints of an Amazon Cognito
 * user pool domain (`/oauth2/authorize`, `/oauth2/token`, `/oauth2/revoke`, `/oauth2/userInfo`,
 * `/logout`), behaving the way Cognito does where a client can tell the difference
 * (research/claude-code-and-cognito.md, Part B), with switches for the faults a CLI must survive.
 *
 * What it copies from Cognito, because our client has to cope with exactly that:
 * - `iss` is a `cognito-idp` URL, not this server's origin, and discovery is not served on the login
 *   domain (B.1): the client must never depend on `/.well-known/openid-configuration`.
 * - Redirect URIs match by string equality, port and trailing slash included (B.2); a bad
 *   `client_id`/`redirect_uri` shows an error page on the server and never reaches the listener (B.3).
 * - PKCE `S256` only, codes single-use and valid 5 minutes (B.3).
 * - Token errors are HTTP 400 `{"error": ...}` without `error_description` (B.4).
 * - A refresh grant returns a new refresh token only with rotation on (B.4, B.6).
 * - Access tokens have no `aud` (B.5); refresh tokens are opaque JWE-shaped blobs (B.5).
 * - Revocation answers 200 for unknown tokens, accepts only refresh tokens, and kills the access
 *   tokens issued from the revoked one, which only userInfo notices (B.5, B.7, B.8).
 *
 * Needs `--allow-net` (127.0.0.1 only); the standalone mode's `--state-file` needs `--allow-write`.
 *
 * @module
 */

/** An app client registered in the pool. Public client: no secret (B.2). */
export interface CognitoClient {
  clientId: string;
  /** Callback URLs, matched by exact string equality (B.2). */
  redirectUris: string[];
  /** Sign-out URLs accepted as `/logout?logout_uri=` (B.7). */
  logoutUris?: string[];
}

/** The one user who is always signed in (the authorize endpoint auto-approves). */
export interface CognitoUser {
  sub: string;
  username: string;
  email: string;
  emailVerified: boolean;
  /** Becomes `cognito:groups` in the access token when non-empty. */
  groups: string[];
}

/** Endpoints that accept a {@linkcode Fault}. */
export type FaultEndpoint = "authorize" | "token" | "revoke" | "userInfo";

/**
 * A fault to inject on one endpoint. Fields combine: `delayMs` first, then the replaced response.
 *
 * `status`, `forceError` and `malformedJson` replace the response and, unless `afterCommit` is set,
 * skip the request's effect (the code is not consumed, the refresh token not rotated).
 */
export interface Fault {
  /** Answer with this HTTP status, e.g. 500, 503, 429 (body `{"error":"server_error"}`-like JSON). */
  status?: number;
  /** With `status` (typically 429 or 503): send `Retry-After: <seconds>`. */
  retryAfterSeconds?: number;
  /** Wait this long before answering (cut short when the server closes). */
  delayMs?: number;
  /**
   * Hold the request (counted, not yet carried out) until this settles: a gate the test opens,
   * so a race is set up by events, not by sleeps. Token and revoke endpoints.
   */
  hold?: Promise<unknown>;
  /** Answer 200 with a body that is not JSON although `Content-Type` says it is. */
  malformedJson?: boolean;
  /** Token endpoint: process normally, but leave `access_token` out of the JSON. */
  omitAccessToken?: boolean;
  /**
   * Answer HTTP 400 `{"error": forceError}` (`status` overrides the 400). On `authorize` it instead
   * redirects to the client with `?error=<forceError>&state=...`.
   */
  forceError?: string;
  /** Replace the body of a `status`/`forceError` response with exactly this text. */
  body?: string;
  /**
   * Perform the request's effect first (code consumed, refresh token rotated), then send the faulty
   * response, as if the real answer was lost on the way back.
   */
  afterCommit?: boolean;
  /** Apply to the next N requests only, then clear itself. Absent: until cleared. */
  times?: number;
}

/** Request counters; plain numbers, reset with {@linkcode CognitoServer.resetCounters}. */
export interface Counters {
  authorize: number;
  /** Every POST to `/oauth2/token`, whatever its grant or outcome. */
  token: number;
  tokenByGrant: { authorization_code: number; refresh_token: number };
  revoke: number;
  userInfo: number;
  logout: number;
}

/** Every secret the server handed out, in issue order, so tests can scan logs and files for them. */
export interface IssuedTokens {
  access: string[];
  id: string[];
  refresh: string[];
  /** Authorization codes (single-use, 5 minutes). */
  codes: string[];
}

/** Options of {@linkcode startCognitoServer}; every field has a default. */
export interface CognitoServerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Registered app clients; default one client {@linkcode DEFAULT_CLIENT_ID}. */
  clients?: CognitoClient[];
  /** Scopes the pool allows (system scopes plus `<resource-server>/<name>`, B.9). */
  allowedScopes?: string[];
  user?: Partial<CognitoUser>;
  /** `iss` of every token; default {@linkcode DEFAULT_ISSUER}. Its path names the JWKS path. */
  issuer?: string;
  /** Refresh-token rotation (B.6); default off. */
  rotation?: boolean;
  /** Cognito's `RetryGracePeriodSeconds` (0–60, default 0 = old token invalid at once). */
  rotationGracePeriodSeconds?: number;
  /** Access and ID token lifetime; default 3600 (B.2). */
  accessTokenLifetimeSeconds?: number;
  /** Refresh token lifetime; default 30 days (B.2). */
  refreshTokenLifetimeSeconds?: number;
  /** Length of the opaque refresh tokens; default 1,000 characters. */
  refreshTokenLength?: number;
  /** Issue opaque random access tokens instead of JWTs (then `expires_in` is all a client knows). */
  opaqueAccessTokens?: boolean;
  /** Leave `expires_in` out of token responses. */
  omitExpiresIn?: boolean;
  /**
   * Keep the profile claims (`email`, the username) out of the ID token and answer them only at
   * `/oauth2/userInfo`, as OpenID providers do by default for the code flow (OIDC Core §5.4).
   */
  profileClaimsInUserInfoOnly?: boolean;
  /** Clock in epoch milliseconds; drives code expiry, token `iat`/`exp` and the `Date` header. */
  now?: () => number;
  /** Called after every counter change or token issue (the standalone `--state-file` uses it). */
  onChange?: (server: CognitoServer) => void;
}

/** Client id of the default client. */
export const DEFAULT_CLIENT_ID = "test-client";

/**
 * Redirect URIs of the default client: the CLI's documented defaults (src/config/config.ts
 * `DEFAULT_REDIRECT_URIS`), repeated here so this fixture does not import the code under test.
 */
export const DEFAULT_REDIRECT_URIS: readonly string[] = [
  "http://localhost:47621/callback",
  "http://localhost:47622/callback",
  "http://localhost:47623/callback",
];

/** Issuer in Cognito's format `https://cognito-idp.<region>.amazonaws.com/<poolId>` (B.1). */
export const DEFAULT_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool";

/** Default allowed scopes; a custom scope is `<identifier>/<name>` (B.9). */
export const DEFAULT_SCOPES: readonly string[] = ["openid", "profile", "email", "proxy/invoke"];

/** Cognito's userInfo description for a bad token (B.8). */
export const INVALID_TOKEN_DESCRIPTION =
  "Access token is expired, disabled, or deleted, or the user has globally signed out.";

/** The authorization code lives 5 minutes (B.3). */
const CODE_LIFETIME_MS = 5 * 60 * 1000;

/** Scopes that Cognito grants only together with `openid` (B.3). */
const OPENID_DEPENDENT_SCOPES = new Set(["email", "phone", "profile"]);

interface CodeRecord {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  scopes: string[];
  nonce: string | undefined;
  issuedAt: number;
  used: boolean;
}

interface RefreshRecord {
  clientId: string;
  scopes: string[];
  /** Shared by every token of one sign-in; stays the same across refreshes (B.5). */
  originJti: string;
  authTime: number;
  /** Fixed at sign-in; a rotated token keeps it (B.6). */
  expiresAt: number;
  /** When rotation replaced this token; it then lives for the grace period only (B.6). */
  supersededAt: number | undefined;
}

interface AccessRecord {
  clientId: string;
  scopes: string[];
  originJti: string;
  expiresAt: number;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JsonWebKey & { kid: string; alg: string; use: string };
}

type Json = Record<string, unknown>;

/**
 * Start the server on 127.0.0.1. Generates two RSA key pairs first (Cognito signs ID and access
 * tokens with different keys, B.5), so allow a few hundred milliseconds.
 */
export async function startCognitoServer(
  options: CognitoServerOptions = {},
): Promise<CognitoServer> {
  const [accessKey, idKey] = await Promise.all([_generateKey(), _generateKey()]);
  return new CognitoServer(options, accessKey, idKey);
}

/** A running server; see {@linkcode startCognitoServer}. */
export class CognitoServer {
  /** Origin of the login domain, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  readonly port: number;
  readonly issuer: string;
  /** Client id of the first registered client. */
  readonly clientId: string;
  readonly clients: CognitoClient[];
  readonly allowedScopes: string[];
  /** The JWKS that verifies every JWT issued (`/<poolId>/.well-known/jwks.json` on this server). */
  readonly jwks: { keys: (JsonWebKey & { kid: string; alg: string; use: string })[] };
  /** Where this server serves {@linkcode jwks}: the issuer's path under {@linkcode url}. */
  readonly jwksUrl: string;
  readonly authorizeEndpoint: string;
  readonly tokenEndpoint: string;
  readonly revokeEndpoint: string;
  readonly userInfoEndpoint: string;
  readonly logoutEndpoint: string;

  readonly counters: Counters = _zeroCounters();
  readonly issued: IssuedTokens = { access: [], id: [], refresh: [], codes: [] };
  /**
   * The login's secrets as each `/oauth2/authorize` request carried them, so tests can look
   * for them where they must not be (a process's argv).
   */
  readonly authorizeSecrets: {
    state: string | null;
    nonce: string | null;
    challenge: string | null;
  }[] = [];
  /** Active faults per endpoint; assign directly or use {@linkcode setFault}. */
  faults: Partial<Record<FaultEndpoint, Fault>> = {};

  // Runtime switches: plain fields, change them at any time.
  user: CognitoUser;
  rotation: boolean;
  rotationGracePeriodSeconds: number;
  accessTokenLifetimeSeconds: number;
  refreshTokenLifetimeSeconds: number;
  refreshTokenLength: number;
  opaqueAccessTokens: boolean;
  omitExpiresIn: boolean;
  profileClaimsInUserInfoOnly: boolean;
  /** When set, `/oauth2/authorize` redirects `?error=<this>&state=...` instead of issuing a code. */
  authorizeError: string | undefined = undefined;
  /** Revocation disabled for the client: `/oauth2/revoke` answers 400 `invalid_request` (B.7). */
  revocationDisabled = false;
  now: () => number;

  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = new AbortController();
  #closed: Promise<void> | undefined;
  #accessKey: SigningKey;
  #idKey: SigningKey;
  #onChange: ((server: CognitoServer) => void) | undefined;
  #codes = new Map<string, CodeRecord>();
  #refreshTokens = new Map<string, RefreshRecord>();
  #accessTokens = new Map<string, AccessRecord>();
  /** `origin_jti`s whose tokens were revoked: revocation covers everything issued from it (B.7). */
  #revokedOrigins = new Set<string>();

  /** Use {@linkcode startCognitoServer}. */
  constructor(options: CognitoServerOptions, accessKey: SigningKey, idKey: SigningKey) {
    this.clients = options.clients?.map((c) => ({ ...c })) ?? [
      { clientId: DEFAULT_CLIENT_ID, redirectUris: [...DEFAULT_REDIRECT_URIS] },
    ];
    if (this.clients.length === 0) throw new Error("Cognito server: at least one client needed");
    this.clientId = this.clients[0].clientId;
    this.allowedScopes = [...(options.allowedScopes ?? DEFAULT_SCOPES)];
    this.issuer = options.issuer ?? DEFAULT_ISSUER;
    this.user = _user(options.user);
    this.rotation = options.rotation ?? false;
    this.rotationGracePeriodSeconds = options.rotationGracePeriodSeconds ?? 0;
    this.accessTokenLifetimeSeconds = options.accessTokenLifetimeSeconds ?? 3600;
    this.refreshTokenLifetimeSeconds = options.refreshTokenLifetimeSeconds ?? 30 * 24 * 3600;
    this.refreshTokenLength = options.refreshTokenLength ?? 1000;
    this.opaqueAccessTokens = options.opaqueAccessTokens ?? false;
    this.omitExpiresIn = options.omitExpiresIn ?? false;
    this.profileClaimsInUserInfoOnly = options.profileClaimsInUserInfoOnly ?? false;
    this.now = options.now ?? Date.now;
    this.#onChange = options.onChange;
    this.#accessKey = accessKey;
    this.#idKey = idKey;
    this.jwks = { keys: [idKey.jwk, accessKey.jwk] };

    this.#server = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: options.port ?? 0,
        // The default prints "Listening on ..." to stdout, which the standalone mode owns.
        onListen() {},
        onError: (error) => {
          console.error("Cognito server: handler failed:", error);
          return new Response("Internal Server Error", { status: 500 });
        },
      },
      (request) => this.#handle(request),
    );
    this.port = this.#server.addr.port;
    this.url = `http://127.0.0.1:${this.port}`;
    this.jwksUrl = `${this.url}${this.#issuerPath()}/.well-known/jwks.json`;
    this.authorizeEndpoint = `${this.url}/oauth2/authorize`;
    this.tokenEndpoint = `${this.url}/oauth2/token`;
    this.revokeEndpoint = `${this.url}/oauth2/revoke`;
    this.userInfoEndpoint = `${this.url}/oauth2/userInfo`;
    this.logoutEndpoint = `${this.url}/logout`;
  }

  /** Set a fault on one endpoint (a copy is stored), replacing any previous one there. */
  setFault(endpoint: FaultEndpoint, fault: Fault): void {
    this.faults[endpoint] = { ...fault };
  }

  /** Clear the fault on one endpoint, or on all of them. */
  clearFaults(endpoint?: FaultEndpoint): void {
    if (endpoint) delete this.faults[endpoint];
    else this.faults = {};
  }

  /** Zero every counter, in place (references to {@linkcode counters} stay valid). */
  resetCounters(): void {
    Object.assign(this.counters, _zeroCounters());
    this.#changed();
  }

  /** Change the signed-in user for tokens issued from now on. */
  setUser(user: Partial<CognitoUser>): void {
    this.user = { ...this.user, ...user };
  }

  /** Every access, ID and refresh token issued so far (codes are in `issued.codes`). */
  allIssuedTokens(): string[] {
    return [...this.issued.access, ...this.issued.id, ...this.issued.refresh];
  }

  /**
   * Revoke one refresh token and everything issued from the same sign-in, as `/oauth2/revoke` does.
   * Returns false when the token is unknown.
   */
  revokeRefreshToken(token: string): boolean {
    const record = this.#refreshTokens.get(token);
    if (!record) return false;
    this.#revokedOrigins.add(record.originJti);
    return true;
  }

  /**
   * Revoke every refresh token issued so far, like `GlobalSignOut` (B.7): the next refresh grant
   * gets `invalid_grant`, userInfo rejects their access tokens.
   */
  revokeAll(): void {
    for (const record of this.#refreshTokens.values()) this.#revokedOrigins.add(record.originJti);
  }

  /** Stop serving; aborts pending fault delays. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      await this.#server.shutdown();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- routing ---------------------------------------------------------------------------

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/oauth2/authorize") {
      return request.method === "GET" ? await this.#authorize(url) : _methodNotAllowed();
    }
    if (path === "/oauth2/token") {
      return request.method === "POST" ? await this.#token(request) : _methodNotAllowed();
    }
    if (path === "/oauth2/revoke") {
      return request.method === "POST" ? await this.#revoke(request) : _methodNotAllowed();
    }
    // Cognito documents GET and POST for userInfo (B.8).
    if (path === "/oauth2/userInfo") {
      return request.method === "GET" || request.method === "POST"
        ? await this.#userInfo(request)
        : _methodNotAllowed();
    }
    if (path === "/logout" && request.method === "GET") return this.#logout(url);
    if (path === "/error") return this.#errorPage(url);
    if (path === `${this.#issuerPath()}/.well-known/jwks.json` && request.method === "GET") {
      return new Response(JSON.stringify(this.jwks), {
        headers: { "content-type": "application/json;charset=UTF-8" },
      });
    }
    if (path === "/.well-known/openid-configuration") {
      // The login domain answers discovery with a non-JSON Bad Request (B.1).
      return new Response("Bad Request", {
        status: 400,
        headers: { "content-type": "text/plain;charset=UTF-8" },
      });
    }
    await request.body?.cancel();
    return new Response("Not Found", { status: 404 });
  }

  // ---- /oauth2/authorize -----------------------------------------------------------------

  async #authorize(url: URL): Promise<Response> {
    this.counters.authorize++;
    this.#changed();
    const fault = this.#takeFault("authorize");
    if (fault?.delayMs) await this.#sleep(fault.delayMs);

    const q = url.searchParams;
    this.authorizeSecrets.push({
      state: q.get("state"),
      nonce: q.get("nonce"),
      challenge: q.get("code_challenge"),
    });
    const clientId = q.get("client_id");
    const redirectUri = q.get("redirect_uri");
    if (!clientId || !redirectUri) return this.#errorRedirect("Required parameters missing");
    const client = this.#client(clientId);
    if (!client) return this.#errorRedirect("invalid_client");
    // Exact string equality, port and trailing slash included (B.2); no redirect to the client.
    if (!client.redirectUris.includes(redirectUri)) return this.#errorRedirect("redirect_mismatch");

    if (fault?.status) {
      return _html(fault.status, fault.body ?? "<html><body>Service unavailable</body></html>");
    }
    // From here on errors go back to the (validated) redirect URI with `state` (B.3).
    const state = q.get("state");
    const back = (params: Record<string, string>) => {
      const target = new URL(redirectUri);
      for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
      if (state !== null) target.searchParams.set("state", state);
      return _redirect(target.href);
    };
    const responseType = q.get("response_type");
    if (responseType !== "code") {
      // The implicit grant is not enabled for this client; anything else is malformed.
      return back({ error: responseType === "token" ? "unauthorized_client" : "invalid_request" });
    }
    // PKCE S256 only: `plain` or a missing method is rejected (B.3). An S256 challenge is
    // BASE64URL(SHA-256), exactly 43 characters (RFC 7636 §4.2).
    const challenge = q.get("code_challenge");
    if (q.get("code_challenge_method") !== "S256" || !challenge) {
      return back({ error: "invalid_request" });
    }
    if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) return back({ error: "invalid_request" });

    // No scope → every scope allowed for the client; unknown → invalid_scope (B.3).
    const requested = q.get("scope");
    const scopes = requested === null ? [...this.allowedScopes] : requested.split(" ");
    if (
      scopes.some((s) => !this.allowedScopes.includes(s)) ||
      (scopes.some((s) => OPENID_DEPENDENT_SCOPES.has(s)) && !scopes.includes("openid"))
    ) {
      return back({ error: "invalid_scope" });
    }

    const forced = this.authorizeError ?? fault?.forceError;
    if (forced) return back({ error: forced });

    // Cognito's codes are UUIDs.
    const code = crypto.randomUUID();
    this.#codes.set(code, {
      clientId,
      redirectUri,
      codeChallenge: challenge,
      scopes,
      nonce: q.get("nonce") ?? undefined,
      issuedAt: this.now(),
      used: false,
    });
    this.issued.codes.push(code);
    this.#changed();
    return back({ code });
  }

  /** Cognito's own error page: `302 /error?error=...` on the login domain (B.3). */
  #errorRedirect(error: string): Response {
    return _redirect(`${this.url}/error?error=${encodeURIComponent(error)}`);
  }

  #errorPage(url: URL): Response {
    const error = url.searchParams.get("error") ?? "";
    const safe = error.replace(/[^A-Za-z0-9 _.-]/g, "");
    return _html(
      400,
      `<html><body><p>An error was encountered with the requested page.</p><p>${safe}</p></body></html>`,
    );
  }

  // ---- /oauth2/token ---------------------------------------------------------------------

  async #token(request: Request): Promise<Response> {
    const form = await _readForm(request);
    const grantType = form?.get("grant_type");
    this.counters.token++;
    if (grantType === "authorization_code" || grantType === "refresh_token") {
      this.counters.tokenByGrant[grantType]++;
    }
    this.#changed();

    const fault = this.#takeFault("token");
    if (fault?.hold) await fault.hold;
    if (fault?.delayMs) await this.#sleep(fault.delayMs);
    const replaced = fault ? this.#faultResponse(fault) : undefined;
    if (replaced && !fault?.afterCommit) return replaced;

    const result = await this.#tokenGrant(form);
    if (replaced) return replaced;
    if ("error" in result) return this.#tokenJson(400, { error: result.error });
    if (fault?.omitAccessToken) delete result.body.access_token;
    return this.#tokenJson(200, result.body);
  }

  async #tokenGrant(
    form: URLSearchParams | undefined,
  ): Promise<{ error: string } | { body: Json }> {
    if (!form) return { error: "invalid_request" };
    const grantType = form.get("grant_type");
    const clientId = form.get("client_id");
    if (!grantType || !clientId) return { error: "invalid_request" };
    if (grantType !== "authorization_code" && grantType !== "refresh_token") {
      return { error: "unsupported_grant_type" };
    }
    // An unknown client is `invalid_client`. Cognito answers it with 400 like every token error.
    if (!this.#client(clientId)) return { error: "invalid_client" };
    return grantType === "authorization_code"
      ? await this.#codeGrant(form, clientId)
      : await this.#refreshGrant(form, clientId);
  }

  async #codeGrant(
    form: URLSearchParams,
    clientId: string,
  ): Promise<{ error: string } | { body: Json }> {
    const code = form.get("code");
    const redirectUri = form.get("redirect_uri");
    const verifier = form.get("code_verifier");
    if (!code || !redirectUri || !verifier) return { error: "invalid_request" };
    const record = this.#codes.get(code);
    // "Authorization code has been consumed already or does not exist" (B.4).
    if (!record || record.used) return { error: "invalid_grant" };
    // Single use: the first exchange attempt consumes the code, even a failing one (RFC 6749 §4.1.2).
    record.used = true;
    if (this.now() - record.issuedAt >= CODE_LIFETIME_MS) return { error: "invalid_grant" };
    // Another client's code, or a redirect_uri differing from the authorize request's (B.2).
    if (record.clientId !== clientId || record.redirectUri !== redirectUri) {
      return { error: "invalid_grant" };
    }
    if ((await _s256(verifier)) !== record.codeChallenge) return { error: "invalid_grant" };

    const authTime = Math.floor(this.now() / 1000);
    const originJti = crypto.randomUUID();
    const refreshToken = this.#newRefreshToken({
      clientId,
      scopes: record.scopes,
      originJti,
      authTime,
      expiresAt: this.now() + this.refreshTokenLifetimeSeconds * 1000,
      supersededAt: undefined,
    });
    const body = await this.#tokenSet(clientId, record.scopes, originJti, authTime, record.nonce);
    return { body: { ...body, refresh_token: refreshToken } };
  }

  async #refreshGrant(
    form: URLSearchParams,
    clientId: string,
  ): Promise<{ error: string } | { body: Json }> {
    const token = form.get("refresh_token");
    if (!token) return { error: "invalid_request" };
    const record = this.#refreshTokens.get(token);
    // Unknown, revoked, expired and rotated-away tokens all read the same (B.4, B.11 item 6).
    if (!record || record.clientId !== clientId || !this.#refreshUsable(record)) {
      return { error: "invalid_grant" };
    }
    // ID token without `nonce` on refresh; `auth_time` and `origin_jti` stay (B.5).
    const body = await this.#tokenSet(
      clientId,
      record.scopes,
      record.originJti,
      record.authTime,
      undefined,
    );
    if (!this.rotation) return { body };
    // Rotation: a new refresh token keeping the original expiry; the old one lives for the grace
    // period only (B.6).
    record.supersededAt ??= this.now();
    const rotated = this.#newRefreshToken({ ...record, supersededAt: undefined });
    return { body: { ...body, refresh_token: rotated } };
  }

  #refreshUsable(record: RefreshRecord): boolean {
    const now = this.now();
    if (this.#revokedOrigins.has(record.originJti)) return false;
    if (now >= record.expiresAt) return false;
    if (record.supersededAt !== undefined) {
      return now < record.supersededAt + this.rotationGracePeriodSeconds * 1000;
    }
    return true;
  }

  /** Access token (+ ID token with `openid`, B.3) in Cognito's response shape (B.4). */
  async #tokenSet(
    clientId: string,
    scopes: string[],
    originJti: string,
    authTime: number,
    nonce: string | undefined,
  ): Promise<Json> {
    const iat = Math.floor(this.now() / 1000);
    const lifetime = this.accessTokenLifetimeSeconds;
    const exp = iat + lifetime;
    const user = this.user;
    let accessToken: string;
    if (this.opaqueAccessTokens) {
      accessToken = _randomBase64url(64);
    } else {
      // Exactly Cognito's access-token claims; no `aud`, verifiers check `client_id` (B.5).
      const claims: Json = { sub: user.sub };
      if (user.groups.length > 0) claims["cognito:groups"] = [...user.groups];
      Object.assign(claims, {
        iss: this.issuer,
        client_id: clientId,
        origin_jti: originJti,
        token_use: "access",
        scope: scopes.join(" "),
        auth_time: authTime,
        exp,
        iat,
        jti: crypto.randomUUID(),
        username: user.username,
      });
      accessToken = await _signJwt(this.#accessKey, claims);
    }
    this.#accessTokens.set(accessToken, {
      clientId,
      scopes,
      originJti,
      expiresAt: exp * 1000,
    });
    this.issued.access.push(accessToken);

    const body: Json = {};
    if (scopes.includes("openid")) {
      const claims: Json = {
        at_hash: await _atHash(accessToken),
        sub: user.sub,
        email_verified: user.emailVerified,
        iss: this.issuer,
        "cognito:username": user.username,
        origin_jti: originJti,
        aud: clientId,
        token_use: "id",
        auth_time: authTime,
        exp,
        iat,
        jti: crypto.randomUUID(),
        email: user.email,
      };
      if (this.profileClaimsInUserInfoOnly) {
        delete claims.email;
        delete claims.email_verified;
        delete claims["cognito:username"];
      }
      if (nonce !== undefined) claims.nonce = nonce;
      const idToken = await _signJwt(this.#idKey, claims);
      this.issued.id.push(idToken);
      body.id_token = idToken;
    }
    body.access_token = accessToken;
    if (!this.omitExpiresIn) body.expires_in = lifetime;
    body.token_type = "Bearer";
    this.#changed();
    return body;
  }

  /**
   * Cognito's refresh tokens are encrypted JWE blobs, opaque to clients (B.5): five dot-separated
   * parts with a real JWE header, so a client that decodes "the JWT payload" of one fails loudly.
   */
  #newRefreshToken(record: RefreshRecord): string {
    const header = _base64url(
      new TextEncoder().encode('{"cty":"JWT","enc":"A256GCM","alg":"RSA-OAEP"}'),
    );
    const rest = Math.max(this.refreshTokenLength - header.length - 4, 16);
    const key = Math.floor(rest * 0.3);
    const iv = 16;
    const tag = 22;
    const ciphertext = Math.max(rest - key - iv - tag, 1);
    const token = [header, key, iv, ciphertext, tag]
      .map((part) => typeof part === "string" ? part : _randomBase64url(part))
      .join(".");
    this.#refreshTokens.set(token, record);
    this.issued.refresh.push(token);
    this.#changed();
    return token;
  }

  #tokenJson(status: number, body: Json, extra: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(body), { status, headers: this.#jsonHeaders(extra) });
  }

  #jsonHeaders(extra: Record<string, string> = {}): Headers {
    return new Headers({
      "content-type": "application/json;charset=UTF-8",
      "cache-control": "no-store",
      pragma: "no-cache",
      // From the injected clock, so clients can measure skew against the server (SPEC 1.2).
      date: new Date(this.now()).toUTCString(),
      ...extra,
    });
  }

  // ---- /oauth2/revoke --------------------------------------------------------------------

  async #revoke(request: Request): Promise<Response> {
    const form = await _readForm(request);
    this.counters.revoke++;
    this.#changed();
    const fault = this.#takeFault("revoke");
    if (fault?.hold) await fault.hold;
    if (fault?.delayMs) await this.#sleep(fault.delayMs);
    const replaced = fault ? this.#faultResponse(fault) : undefined;
    if (replaced && !fault?.afterCommit) return replaced;
    const result = this.#revokeToken(form);
    if (replaced) return replaced;
    return result;
  }

  /** RFC 7009 as Cognito implements it (B.7). */
  #revokeToken(form: URLSearchParams | undefined): Response {
    const token = form?.get("token");
    const clientId = form?.get("client_id");
    if (!token || !clientId || this.revocationDisabled) {
      return this.#tokenJson(400, { error: "invalid_request" });
    }
    if (!this.#client(clientId)) return this.#tokenJson(401, { error: "invalid_client" });
    if (this.#accessTokens.has(token) || this.issued.id.includes(token)) {
      return this.#tokenJson(400, { error: "unsupported_token_type" });
    }
    const record = this.#refreshTokens.get(token);
    if (record && record.clientId === clientId) this.#revokedOrigins.add(record.originJti);
    // Unknown or already revoked: 200 all the same (RFC 7009 §2.2).
    return new Response(null, { status: 200, headers: this.#jsonHeaders() });
  }

  // ---- /oauth2/userInfo ------------------------------------------------------------------

  async #userInfo(request: Request): Promise<Response> {
    await request.body?.cancel();
    this.counters.userInfo++;
    this.#changed();
    const fault = this.#takeFault("userInfo");
    if (fault?.delayMs) await this.#sleep(fault.delayMs);
    const replaced = fault ? this.#faultResponse(fault) : undefined;
    if (replaced) return replaced;

    const header = request.headers.get("authorization") ?? "";
    const match = /^Bearer (\S+)$/i.exec(header);
    if (!match) return this.#tokenJson(400, { error: "invalid_request" });
    const record = this.#accessTokens.get(match[1]);
    const invalid = (description: string) =>
      this.#tokenJson(401, { error: "invalid_token", error_description: description }, {
        "www-authenticate": 'Bearer error="invalid_token"',
      });
    if (
      !record || this.now() >= record.expiresAt || this.#revokedOrigins.has(record.originJti)
    ) {
      return invalid(INVALID_TOKEN_DESCRIPTION);
    }
    // userInfo needs `openid` in the access token (B.8); this is Cognito's wording.
    if (!record.scopes.includes("openid")) {
      return invalid("Access token does not contain openid scope");
    }
    // Cognito's userInfo sends `email_verified` as a string, unlike the ID token's boolean.
    return this.#tokenJson(200, {
      sub: this.user.sub,
      email_verified: String(this.user.emailVerified),
      email: this.user.email,
      username: this.user.username,
    });
  }

  // ---- /logout ---------------------------------------------------------------------------

  /** Clears the (non-existent) session cookie and redirects to a registered sign-out URL (B.7). */
  #logout(url: URL): Response {
    this.counters.logout++;
    this.#changed();
    const q = url.searchParams;
    const client = this.#client(q.get("client_id") ?? "");
    if (!client) return this.#errorRedirect("invalid_client");
    const logoutUri = q.get("logout_uri");
    if (logoutUri !== null) {
      return client.logoutUris?.includes(logoutUri)
        ? _redirect(logoutUri)
        : this.#errorRedirect("redirect_mismatch");
    }
    // The other documented form: sign out, then sign in again via `redirect_uri`+`response_type`.
    if (q.get("redirect_uri") !== null && q.get("response_type") !== null) {
      return _redirect(`${this.authorizeEndpoint}?${q}`);
    }
    return this.#errorRedirect("Required parameters missing");
  }

  // ---- helpers ---------------------------------------------------------------------------

  #client(clientId: string): CognitoClient | undefined {
    return this.clients.find((c) => c.clientId === clientId);
  }

  #issuerPath(): string {
    return new URL(this.issuer).pathname.replace(/\/$/, "");
  }

  /** The fault for this request, counting down `times` and clearing itself at zero. */
  #takeFault(endpoint: FaultEndpoint): Fault | undefined {
    const fault = this.faults[endpoint];
    if (!fault) return undefined;
    if (fault.times !== undefined) {
      if (fault.times <= 0) {
        delete this.faults[endpoint];
        return undefined;
      }
      fault.times--;
      if (fault.times === 0) delete this.faults[endpoint];
    }
    return fault;
  }

  /** The response a fault replaces the real one with, or undefined when it only delays/trims. */
  #faultResponse(fault: Fault): Response | undefined {
    if (fault.malformedJson) {
      return new Response("<html><body>Bad Gateway</body></html>", {
        status: fault.status ?? 200,
        headers: this.#jsonHeaders(),
      });
    }
    if (fault.status === undefined && fault.forceError === undefined) return undefined;
    const status = fault.status ?? 400;
    const error = fault.forceError ?? (status === 429 ? "too_many_requests" : "server_error");
    const extra: Record<string, string> = {};
    if (fault.retryAfterSeconds !== undefined) {
      extra["retry-after"] = String(fault.retryAfterSeconds);
    }
    const body = fault.body ?? JSON.stringify({ error });
    return new Response(body, { status, headers: this.#jsonHeaders(extra) });
  }

  /**
   * Waits `ms`, or less when the server closes, so close() never hangs on a fault and no timer
   * outlives the server. (Not tied to `request.signal`: Deno.serve aborts that on every successful
   * response and warns about the legacy behaviour.)
   */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const closing = this.#closing.signal;
      const done = () => {
        clearTimeout(timer);
        closing.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (closing.aborted) return done();
      closing.addEventListener("abort", done);
    });
  }

  #changed(): void {
    this.#onChange?.(this);
  }
}

// ---- module helpers -----------------------------------------------------------------------

function _zeroCounters(): Counters {
  return {
    authorize: 0,
    token: 0,
    tokenByGrant: { authorization_code: 0, refresh_token: 0 },
    revoke: 0,
    userInfo: 0,
    logout: 0,
  };
}

function _user(user: Partial<CognitoUser> = {}): CognitoUser {
  return {
    sub: "6c1f4e52-8d0a-4f6e-9a57-2b1d3c4e5f60",
    username: "test-user",
    email: "test.user@example.com",
    emailVerified: true,
    groups: [],
    ...user,
  };
}

async function _generateKey(): Promise<SigningKey> {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const exported = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const kid = _base64url(crypto.getRandomValues(new Uint8Array(24)));
  // Cognito's JWKS entries carry exactly these members.
  const jwk = { alg: "RS256", e: exported.e, kid, kty: "RSA", n: exported.n, use: "sig" };
  return { kid, privateKey: pair.privateKey, jwk };
}

async function _signJwt(key: SigningKey, claims: Json): Promise<string> {
  const encoder = new TextEncoder();
  const input = `${_base64url(encoder.encode(JSON.stringify({ kid: key.kid, alg: "RS256" })))}.${
    _base64url(encoder.encode(JSON.stringify(claims)))
  }`;
  const signature = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key.privateKey,
    encoder.encode(input),
  );
  return `${input}.${_base64url(new Uint8Array(signature))}`;
}

/** BASE64URL(SHA-256(verifier)) without padding (RFC 7636 §4.2). */
async function _s256(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return _base64url(new Uint8Array(digest));
}

/** OIDC Core §3.1.3.6: left half of SHA-256 of the access token; Cognito ID tokens carry it. */
async function _atHash(accessToken: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken));
  return _base64url(new Uint8Array(digest).slice(0, 16));
}

function _base64url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** `length` random base64url characters. */
function _randomBase64url(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil((length * 3) / 4)));
  return _base64url(bytes).slice(0, length);
}

/** The form body, or undefined when it is not `application/x-www-form-urlencoded` (B.4). */
async function _readForm(request: Request): Promise<URLSearchParams | undefined> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) {
    await request.body?.cancel();
    return undefined;
  }
  return new URLSearchParams(await request.text());
}

function _redirect(location: string): Response {
  return new Response(null, { status: 302, headers: { location } });
}

function _html(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/html;charset=UTF-8" } });
}

function _methodNotAllowed(): Response {
  return new Response("Method Not Allowed", { status: 405 });
}

// ---- standalone mode ----------------------------------------------------------------------

/** Parsed command line of the standalone mode. */
export interface StandaloneArgs {
  options: CognitoServerOptions;
  stateFile: string | undefined;
}

/**
 * Parse `[--port N] [--client-id ID] [--redirect-uri URI ...] [--logout-uri URI ...] [--issuer URL]
 * [--rotation] [--grace-period S] [--access-token-lifetime S] [--opaque-access-tokens]
 * [--omit-expires-in] [--state-file PATH]`.
 */
export function parseStandaloneArgs(args: string[]): StandaloneArgs {
  const options: CognitoServerOptions = {};
  let clientId = DEFAULT_CLIENT_ID;
  const redirectUris: string[] = [];
  const logoutUris: string[] = [];
  let stateFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`Cognito server: ${flag} needs a value`);
      return v;
    };
    const number = (): number => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0) throw new Error(`Cognito server: ${flag}: not a number`);
      return n;
    };
    switch (flag) {
      case "--port":
        options.port = number();
        break;
      case "--client-id":
        clientId = value();
        break;
      case "--redirect-uri":
        redirectUris.push(value());
        break;
      case "--logout-uri":
        logoutUris.push(value());
        break;
      case "--issuer":
        options.issuer = value();
        break;
      case "--rotation":
        options.rotation = true;
        break;
      case "--grace-period":
        options.rotationGracePeriodSeconds = number();
        break;
      case "--access-token-lifetime":
        options.accessTokenLifetimeSeconds = number();
        break;
      case "--opaque-access-tokens":
        options.opaqueAccessTokens = true;
        break;
      case "--omit-expires-in":
        options.omitExpiresIn = true;
        break;
      case "--state-file":
        stateFile = value();
        break;
      default:
        throw new Error(`Cognito server: unknown argument: ${flag}`);
    }
  }
  options.clients = [{
    clientId,
    redirectUris: redirectUris.length > 0 ? redirectUris : [...DEFAULT_REDIRECT_URIS],
    logoutUris,
  }];
  return { options, stateFile };
}

/** The state file's content: counters and every issued secret, for subprocess tests. */
export function stateSnapshot(server: CognitoServer): string {
  return JSON.stringify({ counters: server.counters, issued: server.issued });
}

/** Written atomically (temp file + rename) so a reader never sees half a file. */
function _writeState(path: string, server: CognitoServer): void {
  const temp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(temp, stateSnapshot(server) + "\n");
  Deno.renameSync(temp, path);
}

async function _main(args: string[]): Promise<void> {
  let parsed: StandaloneArgs;
  try {
    parsed = parseStandaloneArgs(args);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  const { options, stateFile } = parsed;
  if (stateFile) options.onChange = (server) => _writeState(stateFile, server);
  const server = await startCognitoServer(options);
  if (stateFile) _writeState(stateFile, server);
  // Exactly one line on stdout: the launching test reads it to find the server.
  console.log(JSON.stringify({
    url: server.url,
    port: server.port,
    client_id: server.clientId,
    issuer: server.issuer,
    redirect_uris: server.clients[0].redirectUris,
    jwks_uri: server.jwksUrl,
  }));
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await _main(Deno.args);
