/**
 * Tests of the Cognito-compatible test server and the test browser, with plain fetch: they pin the
 * Cognito behaviours (research/claude-code-and-cognito.md, Part B) the end-to-end tests rely on.
 */

import {
  type CognitoServer,
  type CognitoServerOptions,
  DEFAULT_ISSUER,
  INVALID_TOKEN_DESCRIPTION,
  parseStandaloneArgs,
  startCognitoServer,
} from "./cognito_server.ts";
import { followAuthorize } from "./browser.ts";

// ---- tiny assertion helpers (no std import) --------------------------------------------------

function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

function assertEquals(actual: unknown, expected: unknown, message = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message ? message + ": " : ""}expected ${e}, got ${a}`);
}

// ---- helpers ----------------------------------------------------------------------------------

const REDIRECT = "http://localhost:47621/callback";
const T0 = Date.parse("2026-03-01T12:00:00Z");

/** A server on a fake clock; `clock.t` moves time. */
async function withServer(
  fn: (server: CognitoServer, clock: { t: number }) => Promise<void>,
  options: CognitoServerOptions = {},
): Promise<void> {
  const clock = { t: T0 };
  const server = await startCognitoServer({ now: () => clock.t, ...options });
  try {
    await fn(server, clock);
  } finally {
    await server.close();
  }
}

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: b64url(new Uint8Array(digest)) };
}

/** fetch with a bounded wait; the body is always read. */
async function request(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const response = await fetch(url, { redirect: "manual", ...init, signal: controller.signal });
    return { status: response.status, headers: response.headers, text: await response.text() };
  } finally {
    clearTimeout(timer);
  }
}

function post(url: string, params: Record<string, string>) {
  return request(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params),
  });
}

/** GET /oauth2/authorize; returns the Location as a URL. */
async function authorize(
  server: CognitoServer,
  params: Record<string, string | undefined>,
): Promise<URL> {
  const url = new URL(server.authorizeEndpoint);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  const response = await request(url.href);
  assertEquals(response.status, 302, "authorize status");
  return new URL(response.headers.get("location")!);
}

interface Login {
  verifier: string;
  code: string;
  state: string;
  nonce: string;
}

async function getCode(server: CognitoServer, scope = "openid email proxy/invoke"): Promise<Login> {
  const { verifier, challenge } = await pkce();
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const location = await authorize(server, {
    response_type: "code",
    client_id: server.clientId,
    redirect_uri: REDIRECT,
    scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  assertEquals(location.origin + location.pathname, REDIRECT);
  assertEquals(location.searchParams.get("state"), state);
  return { verifier, code: location.searchParams.get("code")!, state, nonce };
}

function exchange(server: CognitoServer, login: Login, overrides: Record<string, string> = {}) {
  return post(server.tokenEndpoint, {
    grant_type: "authorization_code",
    client_id: server.clientId,
    code: login.code,
    redirect_uri: REDIRECT,
    code_verifier: login.verifier,
    ...overrides,
  });
}

async function signIn(server: CognitoServer, scope?: string) {
  const login = await getCode(server, scope);
  const response = await exchange(server, login);
  assertEquals(response.status, 200, `code exchange: ${response.text}`);
  return { login, tokens: JSON.parse(response.text) as Record<string, unknown> };
}

function refresh(server: CognitoServer, refreshToken: string) {
  return post(server.tokenEndpoint, {
    grant_type: "refresh_token",
    client_id: server.clientId,
    refresh_token: refreshToken,
  });
}

function claims(jwt: unknown): Record<string, unknown> {
  assert(typeof jwt === "string", "JWT expected");
  const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload));
}

function jsonError(response: { status: number; text: string }): string {
  assertEquals(response.status, 400, `status of ${response.text}`);
  const body = JSON.parse(response.text);
  // Cognito's token errors usually carry no description (B.4).
  assertEquals(Object.keys(body), ["error"]);
  return body.error;
}

// ---- /oauth2/authorize ------------------------------------------------------------------------

Deno.test("authorize: PKCE S256 is required, plain and missing are rejected", async () => {
  await withServer(async (server) => {
    const { challenge } = await pkce();
    const base = {
      response_type: "code",
      client_id: server.clientId,
      redirect_uri: REDIRECT,
      state: "st8",
    };
    for (
      const pk of [
        { code_challenge: challenge, code_challenge_method: "plain" },
        { code_challenge: challenge },
        { code_challenge_method: "S256" },
        {},
        { code_challenge: "short", code_challenge_method: "S256" },
      ]
    ) {
      const location = await authorize(server, { ...base, ...pk });
      assertEquals(location.origin + location.pathname, REDIRECT, JSON.stringify(pk));
      assertEquals(location.searchParams.get("error"), "invalid_request", JSON.stringify(pk));
      assertEquals(location.searchParams.get("state"), "st8");
      assertEquals(location.searchParams.get("code"), null);
    }
    const ok = await authorize(server, {
      ...base,
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    assert(ok.searchParams.get("code"), "code issued");
    assertEquals(ok.searchParams.get("state"), "st8");
    assertEquals(server.counters.authorize, 6);
  });
});

Deno.test("authorize: bad client or redirect_uri stays on the server's error page", async () => {
  await withServer(async (server) => {
    const { challenge } = await pkce();
    const params = {
      response_type: "code",
      client_id: server.clientId,
      redirect_uri: REDIRECT,
      state: "s",
      code_challenge: challenge,
      code_challenge_method: "S256",
    };
    const unknown = await authorize(server, { ...params, client_id: "nope" });
    assertEquals(unknown.origin, server.url);
    assertEquals(unknown.pathname, "/error");
    // Exact string match: host form, trailing slash, port and path all count (B.2).
    for (
      const uri of [
        "http://127.0.0.1:47621/callback",
        "http://[::1]:47621/callback",
        "http://localhost:47621/callback/",
        "http://localhost:47624/callback",
        "http://localhost:47621/Callback",
        "http://localhost/callback",
      ]
    ) {
      const location = await authorize(server, { ...params, redirect_uri: uri });
      assertEquals(location.origin, server.url, uri);
      assertEquals(location.searchParams.get("error"), "redirect_mismatch", uri);
    }
    const page = await request(`${server.url}/error?error=redirect_mismatch`);
    assertEquals(page.status, 400);
    assert(page.text.includes("An error was encountered"));
  });
});

Deno.test("authorize: scopes, state, response_type and the authorizeError switch", async () => {
  await withServer(async (server) => {
    const { challenge } = await pkce();
    const params = {
      response_type: "code",
      client_id: server.clientId,
      redirect_uri: REDIRECT,
      state: "a.b-c_d~e",
      code_challenge: challenge,
      code_challenge_method: "S256",
    };
    const bad = await authorize(server, { ...params, scope: "openid proxy:invoke" });
    assertEquals(bad.searchParams.get("error"), "invalid_scope");
    assertEquals(bad.searchParams.get("state"), "a.b-c_d~e");
    const emailOnly = await authorize(server, { ...params, scope: "email" });
    assertEquals(emailOnly.searchParams.get("error"), "invalid_scope");
    const implicit = await authorize(server, { ...params, response_type: "token" });
    assertEquals(implicit.searchParams.get("error"), "unauthorized_client");
    const noState = await authorize(server, { ...params, state: undefined });
    assertEquals(noState.searchParams.has("state"), false);
    assert(noState.searchParams.get("code"));

    server.authorizeError = "access_denied";
    const denied = await authorize(server, params);
    assertEquals(denied.searchParams.get("error"), "access_denied");
    assertEquals(denied.searchParams.get("state"), "a.b-c_d~e");
    assertEquals(denied.searchParams.get("code"), null);
    server.authorizeError = undefined;
  });
});

// ---- /oauth2/token: authorization_code --------------------------------------------------------

Deno.test("token: code exchange returns Cognito's shape and headers", async () => {
  await withServer(async (server, clock) => {
    const login = await getCode(server);
    const response = await exchange(server, login);
    assertEquals(response.status, 200);
    assertEquals(response.headers.get("content-type"), "application/json;charset=UTF-8");
    assertEquals(response.headers.get("cache-control"), "no-store");
    assertEquals(response.headers.get("date"), new Date(clock.t).toUTCString());
    const body = JSON.parse(response.text);
    assertEquals(Object.keys(body).sort(), [
      "access_token",
      "expires_in",
      "id_token",
      "refresh_token",
      "token_type",
    ]);
    assertEquals(body.token_type, "Bearer");
    assertEquals(body.expires_in, 3600);
    assertEquals(body.refresh_token.length, 1000);
    // JWE-shaped, opaque (B.5).
    assertEquals(body.refresh_token.split(".").length, 5);
    assertEquals(claims(body.id_token).nonce, login.nonce);
  });
});

Deno.test("token: the code is single-use", async () => {
  await withServer(async (server) => {
    const login = await getCode(server);
    assertEquals((await exchange(server, login)).status, 200);
    assertEquals(jsonError(await exchange(server, login)), "invalid_grant");
    assertEquals(server.counters.tokenByGrant.authorization_code, 2);
  });
});

Deno.test("token: the code lives 5 minutes on the server's clock", async () => {
  await withServer(async (server, clock) => {
    const young = await getCode(server);
    const old = await getCode(server);
    clock.t += 5 * 60 * 1000 - 1;
    assertEquals((await exchange(server, young)).status, 200);
    clock.t += 1;
    assertEquals(jsonError(await exchange(server, old)), "invalid_grant");
  });
});

Deno.test("token: verifier, redirect_uri, client and parameters are checked", async () => {
  await withServer(async (server) => {
    const other = (await pkce()).verifier;
    assertEquals(
      jsonError(await exchange(server, await getCode(server), { code_verifier: other })),
      "invalid_grant",
    );
    assertEquals(
      jsonError(
        await exchange(server, await getCode(server), {
          redirect_uri: "http://localhost:47621/callback/",
        }),
      ),
      "invalid_grant",
    );
    assertEquals(
      jsonError(await exchange(server, await getCode(server), { client_id: "nope" })),
      "invalid_client",
    );
    assertEquals(
      jsonError(await exchange(server, await getCode(server), { grant_type: "password" })),
      "unsupported_grant_type",
    );
    assertEquals(
      jsonError(await exchange(server, await getCode(server), { code_verifier: "" })),
      "invalid_request",
    );
    assertEquals(
      jsonError(await exchange(server, { ...(await getCode(server)), code: "x" })),
      "invalid_grant",
    );
    const json = await request(server.tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assertEquals(jsonError(json), "invalid_request");
    assertEquals((await request(server.tokenEndpoint)).status, 405);
  }, {
    clients: [
      { clientId: "test-client", redirectUris: [REDIRECT] },
      { clientId: "other-client", redirectUris: [REDIRECT] },
    ],
  });
});

Deno.test("token: a code issued to one client is refused to another", async () => {
  await withServer(async (server) => {
    const login = await getCode(server);
    assertEquals(
      jsonError(await exchange(server, login, { client_id: "other-client" })),
      "invalid_grant",
    );
  }, {
    clients: [
      { clientId: "test-client", redirectUris: [REDIRECT] },
      { clientId: "other-client", redirectUris: [REDIRECT] },
    ],
  });
});

// ---- /oauth2/token: refresh_token -------------------------------------------------------------

Deno.test("refresh: rotation off returns no refresh_token and the old one keeps working", async () => {
  await withServer(async (server) => {
    const { tokens } = await signIn(server);
    const rt = tokens.refresh_token as string;
    for (let i = 0; i < 2; i++) {
      const response = await refresh(server, rt);
      assertEquals(response.status, 200);
      const body = JSON.parse(response.text);
      assertEquals(Object.keys(body).sort(), [
        "access_token",
        "expires_in",
        "id_token",
        "token_type",
      ]);
      assert(body.access_token !== tokens.access_token, "a new access token");
      // No nonce on refresh; auth_time and origin_jti stay, jti changes (B.5).
      const id = claims(body.id_token);
      assertEquals(id.nonce, undefined);
      const first = claims(tokens.access_token);
      const next = claims(body.access_token);
      assertEquals(next.auth_time, first.auth_time);
      assertEquals(next.origin_jti, first.origin_jti);
      assert(next.jti !== first.jti);
    }
    assertEquals(server.counters.tokenByGrant.refresh_token, 2);
  });
});

Deno.test("refresh: rotation on returns a new token and invalidates the old one", async () => {
  await withServer(async (server) => {
    server.rotation = true;
    const { tokens } = await signIn(server);
    const old = tokens.refresh_token as string;
    const response = await refresh(server, old);
    assertEquals(response.status, 200);
    const fresh = JSON.parse(response.text).refresh_token;
    assert(typeof fresh === "string" && fresh !== old, "a new refresh token");
    assertEquals(jsonError(await refresh(server, old)), "invalid_grant");
    assertEquals((await refresh(server, fresh)).status, 200);
  });
});

Deno.test("refresh: the rotation grace period keeps the old token briefly", async () => {
  await withServer(async (server, clock) => {
    const { tokens } = await signIn(server);
    const old = tokens.refresh_token as string;
    assertEquals((await refresh(server, old)).status, 200);
    clock.t += 9_999;
    assertEquals((await refresh(server, old)).status, 200);
    clock.t += 1;
    assertEquals(jsonError(await refresh(server, old)), "invalid_grant");
  }, { rotation: true, rotationGracePeriodSeconds: 10 });
});

Deno.test("refresh: unknown, revoked, expired and other-client tokens are invalid_grant", async () => {
  await withServer(async (server, clock) => {
    assertEquals(jsonError(await refresh(server, "unknown")), "invalid_grant");
    const a = (await signIn(server)).tokens.refresh_token as string;
    server.revokeAll();
    assertEquals(jsonError(await refresh(server, a)), "invalid_grant");
    const b = (await signIn(server)).tokens.refresh_token as string;
    assertEquals(
      jsonError(
        await post(server.tokenEndpoint, {
          grant_type: "refresh_token",
          client_id: "other-client",
          refresh_token: b,
        }),
      ),
      "invalid_grant",
    );
    clock.t += 3600 * 1000;
    assertEquals(jsonError(await refresh(server, b)), "invalid_grant");
    assertEquals(
      jsonError(
        await post(server.tokenEndpoint, { grant_type: "refresh_token", client_id: "test-client" }),
      ),
      "invalid_request",
    );
  }, {
    refreshTokenLifetimeSeconds: 3600,
    clients: [
      { clientId: "test-client", redirectUris: [REDIRECT] },
      { clientId: "other-client", redirectUris: [REDIRECT] },
    ],
  });
});

// ---- /oauth2/revoke and /oauth2/userInfo ------------------------------------------------------

Deno.test("revoke: RFC 7009 semantics as Cognito implements them", async () => {
  await withServer(async (server) => {
    const { tokens } = await signIn(server);
    const revoke = (token: string | undefined) =>
      post(server.revokeEndpoint, {
        client_id: server.clientId,
        ...(token === undefined ? {} : { token }),
      });
    const unknown = await revoke("unknown");
    assertEquals(unknown.status, 200);
    assertEquals(unknown.text, "");
    assertEquals(jsonError(await revoke(tokens.access_token as string)), "unsupported_token_type");
    assertEquals(jsonError(await revoke(undefined)), "invalid_request");

    const bearer = { authorization: `Bearer ${tokens.access_token}` };
    assertEquals((await request(server.userInfoEndpoint, { headers: bearer })).status, 200);
    assertEquals((await revoke(tokens.refresh_token as string)).status, 200);
    // Already revoked: 200 again.
    assertEquals((await revoke(tokens.refresh_token as string)).status, 200);
    assertEquals(jsonError(await refresh(server, tokens.refresh_token as string)), "invalid_grant");
    // The access token issued from it is dead for userInfo (B.7).
    assertEquals((await request(server.userInfoEndpoint, { headers: bearer })).status, 401);

    server.revocationDisabled = true;
    assertEquals(jsonError(await revoke("whatever")), "invalid_request");
    server.revocationDisabled = false;
    server.setFault("revoke", { status: 503, times: 1 });
    assertEquals((await revoke("whatever")).status, 503);
    assertEquals((await revoke("whatever")).status, 200);
    assertEquals(server.counters.revoke, 8);
  });
});

Deno.test("userInfo: needs a live token with openid", async () => {
  await withServer(async (server, clock) => {
    const { tokens } = await signIn(server);
    const ok = await request(server.userInfoEndpoint, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assertEquals(ok.status, 200);
    assertEquals(JSON.parse(ok.text), {
      sub: server.user.sub,
      email_verified: "true",
      email: "test.user@example.com",
      username: "test-user",
    });
    const bad = await request(server.userInfoEndpoint, {
      headers: { authorization: "Bearer not-a-token" },
    });
    assertEquals(bad.status, 401);
    assertEquals(bad.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
    assertEquals(JSON.parse(bad.text), {
      error: "invalid_token",
      error_description: INVALID_TOKEN_DESCRIPTION,
    });
    assertEquals((await request(server.userInfoEndpoint)).status, 400);
    const noOpenid = (await signIn(server, "proxy/invoke")).tokens;
    assertEquals(noOpenid.id_token, undefined);
    assertEquals(
      (await request(server.userInfoEndpoint, {
        headers: { authorization: `Bearer ${noOpenid.access_token}` },
      })).status,
      401,
    );
    clock.t += 3600 * 1000;
    const expired = await request(server.userInfoEndpoint, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assertEquals(expired.status, 401);
    assertEquals(server.counters.userInfo, 5);
  });
});

// ---- tokens -----------------------------------------------------------------------------------

Deno.test("tokens: Cognito's claims, issuer apart from the origin, JWKS verifies", async () => {
  await withServer(async (server, clock) => {
    server.setUser({ groups: ["admins"] });
    const { login, tokens } = await signIn(server);
    const access = claims(tokens.access_token);
    const iat = Math.floor(clock.t / 1000);
    assertEquals(Object.keys(access).sort(), [
      "auth_time",
      "client_id",
      "cognito:groups",
      "exp",
      "iat",
      "iss",
      "jti",
      "origin_jti",
      "scope",
      "sub",
      "token_use",
      "username",
    ]);
    assertEquals(access.aud, undefined);
    assertEquals(access.token_use, "access");
    assertEquals(access.scope, "openid email proxy/invoke");
    assertEquals(access.client_id, "test-client");
    assertEquals(access.iss, DEFAULT_ISSUER);
    assert(!String(access.iss).startsWith(server.url), "issuer is not the login domain");
    assertEquals(access.iat, iat);
    assertEquals(access.exp, iat + 3600);
    const id = claims(tokens.id_token);
    assertEquals(id.aud, "test-client");
    assertEquals(id.token_use, "id");
    assertEquals(id.email, "test.user@example.com");
    assertEquals(id.email_verified, true);
    assertEquals(id["cognito:username"], "test-user");
    assertEquals(id.nonce, login.nonce);
    assertEquals(id.origin_jti, access.origin_jti);

    const jwks = JSON.parse((await request(server.jwksUrl)).text);
    assertEquals(jwks, server.jwks);
    assertEquals(new URL(server.jwksUrl).pathname, "/us-east-1_TestPool/.well-known/jwks.json");
    const kids = new Set<string>();
    for (const token of [tokens.access_token, tokens.id_token] as string[]) {
      const [h, p, s] = token.split(".");
      const header = JSON.parse(atob(h.replace(/-/g, "+").replace(/_/g, "/")));
      assertEquals(header.alg, "RS256");
      kids.add(header.kid);
      const jwk = jwks.keys.find((k: { kid: string }) => k.kid === header.kid);
      const key = await crypto.subtle.importKey(
        "jwk",
        jwk,
        { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
        false,
        ["verify"],
      );
      const signature = Uint8Array.from(
        atob(s.replace(/-/g, "+").replace(/_/g, "/")),
        (c) => c.charCodeAt(0),
      );
      const ok = await crypto.subtle.verify(
        "RSASSA-PKCS1-v1_5",
        key,
        signature,
        new TextEncoder().encode(`${h}.${p}`),
      );
      assert(ok, "signature verifies");
    }
    // ID and access tokens are signed with different keys (B.5).
    assertEquals(kids.size, 2);

    const discovery = await request(`${server.url}/.well-known/openid-configuration`);
    assertEquals(discovery.status, 400);
    assertEquals(discovery.text, "Bad Request");
  });
});

Deno.test("tokens: opaque access tokens, omitted expires_in, lifetime changed at runtime", async () => {
  await withServer(async (server) => {
    const opaque = (await signIn(server)).tokens;
    assertEquals(String(opaque.access_token).split(".").length, 1);
    assertEquals(opaque.expires_in, 900);
    assertEquals(
      (await request(server.userInfoEndpoint, {
        headers: { authorization: `Bearer ${opaque.access_token}` },
      })).status,
      200,
    );
    server.opaqueAccessTokens = false;
    server.accessTokenLifetimeSeconds = 300;
    server.omitExpiresIn = true;
    const next = JSON.parse((await refresh(server, opaque.refresh_token as string)).text);
    assertEquals(next.expires_in, undefined);
    const access = claims(next.access_token);
    assertEquals(Number(access.exp) - Number(access.iat), 300);
  }, { opaqueAccessTokens: true, accessTokenLifetimeSeconds: 900, refreshTokenLength: 1700 });
});

// ---- faults -----------------------------------------------------------------------------------

Deno.test("faults: status, Retry-After, malformed JSON, missing access_token, times", async () => {
  await withServer(async (server) => {
    const { tokens } = await signIn(server);
    const rt = tokens.refresh_token as string;

    server.setFault("token", { status: 500, times: 1 });
    const e500 = await refresh(server, rt);
    assertEquals(e500.status, 500);
    assertEquals((await refresh(server, rt)).status, 200, "fault cleared after one use");

    server.faults.token = { status: 429, retryAfterSeconds: 7, times: 2 };
    for (let i = 0; i < 2; i++) {
      const throttled = await refresh(server, rt);
      assertEquals(throttled.status, 429);
      assertEquals(throttled.headers.get("retry-after"), "7");
    }
    assertEquals((await refresh(server, rt)).status, 200);

    server.setFault("token", { malformedJson: true });
    const malformed = await refresh(server, rt);
    assertEquals(malformed.status, 200);
    let parsed = true;
    try {
      JSON.parse(malformed.text);
    } catch {
      parsed = false;
    }
    assert(!parsed, "body is not JSON");
    server.clearFaults();

    server.setFault("token", { omitAccessToken: true, times: 1 });
    const missing = JSON.parse((await refresh(server, rt)).text);
    assertEquals(missing.access_token, undefined);
    assert(missing.id_token, "rest of the response is there");

    server.setFault("token", { forceError: "invalid_grant", times: 1 });
    assertEquals(jsonError(await refresh(server, rt)), "invalid_grant");
    assertEquals((await refresh(server, rt)).status, 200, "the token itself is still good");
    assertEquals(server.counters.token, 10);
  });
});

Deno.test("faults: delay is observable and aborted by close", async () => {
  await withServer(async (server) => {
    const { tokens } = await signIn(server);
    server.setFault("token", { delayMs: 300, times: 1 });
    const start = performance.now();
    assertEquals((await refresh(server, tokens.refresh_token as string)).status, 200);
    assert(performance.now() - start >= 290, "slow response");

    // A 60 s delay pending while the server closes must neither hang close() nor leak a timer.
    server.setFault("token", { delayMs: 60_000 });
    const pending = refresh(server, tokens.refresh_token as string).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await server.close();
    await pending;
  });
});

Deno.test("faults: afterCommit rotates the token but loses the response", async () => {
  await withServer(async (server) => {
    const { tokens } = await signIn(server);
    const old = tokens.refresh_token as string;
    server.setFault("token", { status: 502, afterCommit: true, times: 1 });
    assertEquals((await refresh(server, old)).status, 502);
    assertEquals(jsonError(await refresh(server, old)), "invalid_grant");
    assertEquals(server.issued.refresh.length, 2);
  }, { rotation: true });
});

// ---- counters, issued, logout -----------------------------------------------------------------

Deno.test("counters and issued tokens", async () => {
  await withServer(async (server) => {
    const { tokens } = await signIn(server);
    await refresh(server, tokens.refresh_token as string);
    assertEquals(server.counters, {
      authorize: 1,
      token: 2,
      tokenByGrant: { authorization_code: 1, refresh_token: 1 },
      revoke: 0,
      userInfo: 0,
      logout: 0,
    });
    assertEquals(server.issued.access.length, 2);
    assertEquals(server.issued.id.length, 2);
    assertEquals(server.issued.refresh, [tokens.refresh_token]);
    assertEquals(server.issued.codes.length, 1);
    assert(server.allIssuedTokens().includes(tokens.access_token as string));
    const counters = server.counters;
    server.resetCounters();
    assertEquals(counters.token, 0);
    assertEquals(counters.tokenByGrant.refresh_token, 0);
  });
});

Deno.test("logout: redirects to a registered sign-out URL only, and counts", async () => {
  await withServer(async (server) => {
    const good = await request(
      `${server.logoutEndpoint}?client_id=test-client&logout_uri=${
        encodeURIComponent("http://localhost:47621/signed-out")
      }`,
    );
    assertEquals(good.status, 302);
    assertEquals(good.headers.get("location"), "http://localhost:47621/signed-out");
    const bad = await request(
      `${server.logoutEndpoint}?client_id=test-client&logout_uri=${
        encodeURIComponent("http://localhost:1/x")
      }`,
    );
    assertEquals(new URL(bad.headers.get("location")!).origin, server.url);
    assertEquals(server.counters.logout, 2);
  }, {
    clients: [{
      clientId: "test-client",
      redirectUris: [REDIRECT],
      logoutUris: ["http://localhost:47621/signed-out"],
    }],
  });
});

// ---- standalone mode --------------------------------------------------------------------------

Deno.test("standalone: argument parsing", () => {
  const { options, stateFile } = parseStandaloneArgs([
    "--port",
    "0",
    "--redirect-uri",
    "http://127.0.0.1:5000/cb",
    "--redirect-uri",
    "http://localhost:5000/cb",
    "--rotation",
    "--state-file",
    "/tmp/x.json",
  ]);
  assertEquals(options.port, 0);
  assertEquals(options.rotation, true);
  assertEquals(options.clients?.[0].redirectUris, [
    "http://127.0.0.1:5000/cb",
    "http://localhost:5000/cb",
  ]);
  assertEquals(stateFile, "/tmp/x.json");
  let threw = false;
  try {
    parseStandaloneArgs(["--bogus"]);
  } catch {
    threw = true;
  }
  assert(threw, "unknown flag rejected");
});

Deno.test("standalone: prints one JSON line, writes the state file, stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  const stateFile = `${dir}/state.json`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      new URL("./cognito_server.ts", import.meta.url).pathname,
      "--redirect-uri",
      "http://127.0.0.1:47621/callback",
      "--rotation",
      "--state-file",
      stateFile,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const info = JSON.parse(out.trim());
    assertEquals(info.client_id, "test-client");
    assertEquals(info.issuer, DEFAULT_ISSUER);
    assert(/^http:\/\/127\.0\.0\.1:\d+$/.test(info.url), info.url);

    const state0 = JSON.parse(await Deno.readTextFile(stateFile));
    assertEquals(state0.counters.token, 0);
    const response = await post(`${info.url}/oauth2/token`, {
      grant_type: "refresh_token",
      client_id: "test-client",
      refresh_token: "nope",
    });
    assertEquals(jsonError(response), "invalid_grant");
    const state1 = JSON.parse(await Deno.readTextFile(stateFile));
    assertEquals(state1.counters.token, 1);
    assertEquals(state1.counters.tokenByGrant.refresh_token, 1);

    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    assertEquals(out.trim().split("\n").length, 1, "exactly one line on stdout");
    const status = await child.status;
    assertEquals(status.code, 0);
  } finally {
    clearTimeout(killer);
    reader.releaseLock();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the test browser -------------------------------------------------------------------------

interface Listener {
  url: string;
  hits: URL[];
  status: number;
  close(): Promise<void>;
}

/** A minimal loopback callback listener that records what reaches it. */
function startListener(): Listener {
  const hits: URL[] = [];
  const listener: Listener = {
    url: "",
    hits,
    status: 200,
    close: () => server.shutdown(),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    hits.push(new URL(req.url));
    return new Response("You can close this tab.", { status: listener.status });
  });
  listener.url = `http://127.0.0.1:${server.addr.port}/callback`;
  return listener;
}

async function withBrowserSetup(
  fn: (server: CognitoServer, listener: Listener, authorizeUrl: string) => Promise<void>,
): Promise<void> {
  const listener = startListener();
  const server = await startCognitoServer({
    clients: [
      { clientId: "test-client", redirectUris: [listener.url] },
      { clientId: "remote-client", redirectUris: ["https://example.com/callback"] },
    ],
  });
  try {
    const { challenge } = await pkce();
    const url = new URL(server.authorizeEndpoint);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: "test-client",
      redirect_uri: listener.url,
      scope: "openid email",
      state: "the-state",
      code_challenge: challenge,
      code_challenge_method: "S256",
    }).toString();
    await fn(server, listener, url.href);
  } finally {
    await server.close();
    await listener.close();
  }
}

async function runBrowser(url: string, env: Record<string, string> = {}) {
  const output = await new Deno.Command(new URL("./browser", import.meta.url).pathname, {
    args: [url],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("browser: follows the redirect to the loopback listener, silent on stdout", async () => {
  await withBrowserSetup(async (server, listener, authorizeUrl) => {
    const dir = await Deno.makeTempDir();
    try {
      const log = `${dir}/browser.log`;
      const result = await runBrowser(authorizeUrl, { TEST_BROWSER_LOG: log });
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, "");
      assertEquals(listener.hits.length, 1);
      assertEquals(listener.hits[0].searchParams.get("state"), "the-state");
      assert(listener.hits[0].searchParams.get("code"), "code delivered");
      assertEquals(server.counters.authorize, 1);
      const lines = (await Deno.readTextFile(log)).trim().split("\n");
      assertEquals(lines.length, 1);
      const entry = JSON.parse(lines[0]);
      assertEquals(entry.client_id, "test-client");
      assertEquals(entry.redirect_uri, listener.url);
      assertEquals(entry.has_state, true);
      assertEquals(entry.mode, "follow");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("browser: deny, wrong-state and abandon modes", async () => {
  await withBrowserSetup(async (server, listener, authorizeUrl) => {
    const denied = await runBrowser(authorizeUrl, { TEST_BROWSER_MODE: "deny" });
    assertEquals(denied.code, 0, denied.stderr);
    assertEquals(server.counters.authorize, 0);
    assertEquals(listener.hits[0].searchParams.get("error"), "access_denied");
    assertEquals(listener.hits[0].searchParams.get("state"), "the-state");

    listener.hits.length = 0;
    const wrong = await runBrowser(authorizeUrl, { TEST_BROWSER_MODE: "wrong-state" });
    assertEquals(wrong.code, 0, wrong.stderr);
    assertEquals(listener.hits.length, 2);
    assert(listener.hits[0].searchParams.get("state") !== "the-state", "tampered first");
    assertEquals(listener.hits[1].searchParams.get("state"), "the-state");

    listener.hits.length = 0;
    const abandoned = await runBrowser(authorizeUrl, {
      TEST_BROWSER_MODE: "abandon",
      TEST_BROWSER_DELAY_MS: "50",
    });
    assertEquals(abandoned.code, 0);
    assertEquals(listener.hits.length, 0);
    assertEquals(server.counters.authorize, 1);
  });
});

Deno.test("browser: fails on error pages, non-loopback redirects and listener errors", async () => {
  await withBrowserSetup(async (server, listener, authorizeUrl) => {
    const badClient = new URL(authorizeUrl);
    badClient.searchParams.set("client_id", "unknown");
    const errorPage = await runBrowser(badClient.href);
    assertEquals(errorPage.code, 1);
    assert(errorPage.stderr.includes("error page"), errorPage.stderr);
    assertEquals(errorPage.stdout, "");

    const remote = new URL(authorizeUrl);
    remote.searchParams.set("client_id", "remote-client");
    remote.searchParams.set("redirect_uri", "https://example.com/callback");
    const notLoopback = await runBrowser(remote.href);
    assertEquals(notLoopback.code, 1);
    assert(notLoopback.stderr.includes("loopback"), notLoopback.stderr);

    listener.status = 400;
    const refused = await runBrowser(authorizeUrl);
    assertEquals(refused.code, 1);
    assert(refused.stderr.includes("HTTP 400"), refused.stderr);
    assertEquals(listener.hits.length, 1);
    assertEquals(server.counters.authorize, 3);
  });
});

Deno.test("browser: followAuthorize in process", async () => {
  await withBrowserSetup(async (server, listener, authorizeUrl) => {
    const result = await followAuthorize(authorizeUrl, { timeoutMs: 5_000 });
    assertEquals(result.callbackStatus, 200);
    assertEquals(new URL(result.callbackUrl!).searchParams.get("state"), "the-state");
    assertEquals(listener.hits.length, 1);
    // The delivered code really works at the token endpoint.
    assertEquals(server.issued.codes, [listener.hits[0].searchParams.get("code")]);
  });
});
