/**
 * Fault suite, part 3: the loopback callback listener (src/oauth/loopback.ts, SPEC.md §5) under
 * wrong, forged and hostile requests, driven in-process and through the real CLI with a hostile
 * `$BROWSER`, plus a denied sign-in and a redirect port that is already taken.
 *
 * `error=access_denied` is the one case with two answers: with a wrong `state` it is someone
 * else's request and is ignored; with the right `state` it is the authorization server's
 * genuine answer, so the login fails at once with one clear line instead of waiting for a
 * callback that will never come.
 */
import assert from "node:assert/strict";
import { listenOnFreshPort, ROOT, World } from "./harness.ts";
import { secretServiceTestOptions } from "./fixtures/secret_service.ts";
import { listenForCallback } from "../src/oauth/loopback.ts";
import { LoginFailedError } from "../src/errors.ts";
import { hostileProbes } from "./fixtures/hostile_browser.ts";
import { rawRequest } from "./fixtures/raw_http.ts";
import {
  assertNoSecrets,
  assertToken,
  loginState,
  stored,
  writtenFiles,
} from "./fixtures/fault_kit.ts";

const STATE = "Zq3v8uB1xV0rT5yN2mK7pL4cJ9hG6fD0sA1wE3rT5yU";
const as = {
  issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool",
  authorization_endpoint: "http://127.0.0.1:9/oauth2/authorize",
  token_endpoint: "http://127.0.0.1:9/oauth2/token",
};
const client = { client_id: "test-client" };
const check = { as, client, state: STATE };
/** The redirect URI on `host` for a port (see {@linkcode listenOnFreshPort}). */
const callbackOn = (host: string) => (port: number) => `http://${host}:${port}/callback`;

/** The browser's one argument: the listener's one-time start page, nothing else (SPEC.md §1.3). */
const START_PAGE = (world: World) =>
  new RegExp(`^${new URL(world.redirectUri).origin.replaceAll(".", "\\.")}/start/[\\w-]{43}$`);

/** What each hostile probe must get; `null`: any refusal (4xx, or the connection dropped). */
const EXPECTED: Record<string, number | null> = {
  "wrong state": 400,
  "missing state": 400,
  "empty state": 400,
  "missing code (right state)": 400,
  "empty code (right state)": 400,
  "error=access_denied with a wrong state": 400,
  "error=access_denied without state": 400,
  "duplicated state": 400,
  "implicit-flow id_token (right state)": 400,
  "foreign iss (right state)": 400,
  "root path": 404,
  "favicon": 404,
  "path prefix": 404,
  "sub path": 404,
  "path in other case": 404,
  "POST": 405,
  "HEAD": 405,
  "Host: evil.example": 400,
  "Host: loopback, another port": 400,
  "Host: no port": 400,
  "no Host header": null,
  "oversized query (right state)": 414,
  "huge request line": null,
};

function assertRefused(name: string, status: number | "closed"): void {
  assert.ok(name in EXPECTED, `unknown probe ${name}`);
  const want = EXPECTED[name];
  if (want === null) {
    assert.ok(status === "closed" || (status >= 400 && status < 500), `${name}: got ${status}`);
  } else {
    assert.equal(status, want, name);
  }
}

/** Whether `p` has settled, without waiting for it. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol();
  const first = await Promise.race([p.then(() => true, () => true), Promise.resolve(marker)]);
  return first !== marker;
}

Deno.test("callback listener: every wrong request is refused and ignored; the real one is accepted once", async () => {
  const { port, listener } = listenOnFreshPort(callbackOn("127.0.0.1"), check);
  const redirect = new URL(listener.redirectUri);
  try {
    for (const probe of hostileProbes(redirect, STATE)) {
      assertRefused(probe.name, await rawRequest({ port, ...probe }));
      assert.equal(await settled(listener.result), false, `${probe.name} must not end the login`);
    }
    const real = `/callback?code=the-real-code&state=${STATE}`;
    assert.equal(await rawRequest({ port, target: real }), 200);
    const params = await listener.result;
    assert.equal(params.get("code"), "the-real-code");
    // A second callback after success (a reload, or an attacker racing in) is not accepted.
    const again = await rawRequest({ port, target: `/callback?code=other&state=${STATE}` });
    assert.ok(again === 410 || again === "closed", `second callback: ${again}`);
    assert.equal((await listener.result).get("code"), "the-real-code");
  } finally {
    await listener.close();
  }
});

Deno.test("callback listener: error=access_denied with the right state fails the login at once, with one clear line", async () => {
  const { port, listener } = listenOnFreshPort(callbackOn("127.0.0.1"), check);
  try {
    const rejected = assert.rejects(listener.result, (error: unknown) => {
      assert.ok(error instanceof LoginFailedError);
      assert.equal(error.message, "The sign-in was denied (access_denied)");
      return true;
    });
    const status = await rawRequest({
      port,
      target: `/callback?error=access_denied&state=${STATE}`,
    });
    assert.equal(status, 400, "the browser is told the sign-in failed");
    await rejected;
    const late = await rawRequest({ port, target: `/callback?code=late&state=${STATE}` });
    assert.ok(late === 410 || late === "closed", `a late real callback: ${late}`);
  } finally {
    await listener.close();
  }
});

Deno.test("callback listener: an error value full of junk is reported on one short line", async () => {
  const junk = "x\r\nSet-Cookie: a=b\u0000\u202e<script>" + "é".repeat(500);
  const { port, listener } = listenOnFreshPort(callbackOn("127.0.0.1"), check);
  try {
    const rejected = assert.rejects(listener.result, (error: unknown) => {
      assert.ok(error instanceof LoginFailedError);
      // Only printable ASCII: no line break, NUL or bidi override reaches the terminal.
      assert.ok(/^[\x20-\x7e]+$/.test(error.message), "no control characters");
      assert.ok(error.message.length < 200, `bounded: ${error.message.length}`);
      assert.match(error.message, /^The auth domain refused the sign-in \(x\?\?Set-Cookie/);
      return true;
    });
    const q = new URLSearchParams({ error: junk, state: STATE });
    assert.equal(await rawRequest({ port, target: `/callback?${q}` }), 400);
    await rejected;
  } finally {
    await listener.close();
  }
});

Deno.test("callback listener: a localhost redirect accepts the loopback Host names and no other", async () => {
  const { port, listener } = listenOnFreshPort(callbackOn("localhost"), check);
  try {
    const target = `/callback?code=c&state=${STATE}x`; // wrong state: never accepted
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
      // Past the Host check, the wrong state is what refuses it (400 with that page).
      assert.equal(await rawRequest({ port, target, host }), 400, host);
    }
    for (const host of [`localhost.evil.example:${port}`, `127.0.0.2:${port}`, "localhost"]) {
      assert.equal(await rawRequest({ port, target, host }), 400, host);
    }
    assert.equal(await settled(listener.result), false);
    // ::1 is bound too when the machine has IPv6 (RFC 8252 §8.3); the real callback arrives there.
    const v6 = await rawRequest({
      port,
      hostname: "::1",
      host: `[::1]:${port}`,
      target: `/callback?code=via-v6&state=${STATE}`,
    });
    if (v6 === "closed") {
      const v4 = await rawRequest({
        port,
        host: `localhost:${port}`,
        target: `/callback?code=via-v6&state=${STATE}`,
      });
      assert.equal(v4, 200);
    } else {
      assert.equal(v6, 200);
    }
    assert.equal((await listener.result).get("code"), "via-v6");
  } finally {
    await listener.close();
  }
});

Deno.test("callback listener: a taken port is one error naming the port and the fix", () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (blocker.addr as Deno.NetAddr).port;
  try {
    assert.throws(
      () => listenForCallback([`http://127.0.0.1:${port}/callback`], { as, client, state: STATE }),
      (error: unknown) => {
        assert.ok(error instanceof LoginFailedError);
        assert.equal(
          error.message,
          `Cannot listen for the sign-in callback: port ${port} on loopback is in use (another login running?); stop the program using it, or set redirect_uri in the config to another registered loopback URL`,
        );
        return true;
      },
    );
  } finally {
    blocker.close();
  }
});

Deno.test({
  name: "fault: a hostile browser hammers the CLI's listener; nothing wrong is accepted, the " +
    "real sign-in still works, and no code is exchanged twice",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    try {
      const log = `${world.dir}/hostile.json`;
      const r = await world.runInTerminal(["token"], {
        BROWSER: `${ROOT}/test/fixtures/hostile_browser`,
        HOSTILE_LOG: log,
      });
      const token = assertToken(r, world);
      const report = JSON.parse(await Deno.readTextFile(log));
      assert.equal(report.error, undefined, report.error);
      for (const [name, status] of Object.entries(report.probes)) {
        assertRefused(name, status as number | "closed");
      }
      assert.equal(Object.keys(report.probes).length, Object.keys(EXPECTED).length);
      assert.equal(report.real, 200);
      assert.ok(report.replay === 410 || report.replay === "closed", `replay: ${report.replay}`);
      assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
      assert.equal((await stored(world)).access, token);
      // The browser got exactly one argument, the listener's start page: no secret on its argv.
      assert.equal(report.argv.length, 1);
      assert.match(report.argv[0], START_PAGE(world));
      assert.equal(report.start, 302);
      assertNoSecrets(world, [
        r.stderr,
        JSON.stringify(report.argv),
        ...(await writtenFiles(world)),
      ]);
    } finally {
      await world.close();
    }
  },
});

Deno.test({
  name: "fault: the user denies the sign-in: exit 8 with one clear line, nothing stored",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    try {
      const r = await world.runInTerminal(["token"], { TEST_BROWSER_MODE: "deny" });
      assert.equal(r.code, 8, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr.trimEnd().split("\n").at(-1),
        "agent-runner-auth: The sign-in was denied (access_denied)",
      );
      assert.deepEqual(await stored(world), { access: null, refresh: null });
      assert.equal(loginState(world)?.status, "failed");
      assert.equal(world.server.counters.tokenByGrant.authorization_code, 0);
      assertNoSecrets(world, [r.stderr, ...(await writtenFiles(world))]);
    } finally {
      await world.close();
    }
  },
});

Deno.test({
  name: "fault: the redirect port is taken: exit 8 naming the port and the fix, no browser",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    const { hostname, port: portText } = new URL(world.redirectUri);
    const port = Number(portText);
    const blocker = Deno.listen({ hostname, port });
    try {
      const r = await world.runInTerminal(["token"]);
      assert.equal(r.code, 8, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr.trimEnd().split("\n").at(-1),
        `agent-runner-auth: Cannot listen for the sign-in callback: port ${port} on loopback is in use (another login running?); stop the program using it, or set redirect_uri in the config to another registered loopback URL`,
      );
      assert.equal(await world.browserLaunches(), 0);
      assert.equal(world.server.counters.authorize, 0);
      assert.deepEqual(await stored(world), { access: null, refresh: null });
    } finally {
      blocker.close();
      await world.close();
    }
  },
});

Deno.test({
  name: "fault: the auth server refuses the sign-in (invalid_scope), or the code exchange " +
    "fails (HTTP 500): one sentence, nothing stored, the failure recorded",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    try {
      await world.writeConfig({ scope: "openid email admin/all" });
      const refused = await world.runInTerminal(["token"]);
      assert.equal(refused.code, 8, refused.stderr);
      assert.equal(refused.stdout, "");
      assert.equal(
        refused.stderr.trimEnd().split("\n").at(-1),
        "agent-runner-auth: A requested scope is not allowed for this app client (invalid_scope): check scope in the config",
      );
      assert.equal(loginState(world)?.status, "failed");

      await world.writeConfig();
      world.server.setFault("token", { status: 500 });
      const exchange = await world.runInTerminal(["token"], {
        AGENT_RUNNER_LOGIN_COOLDOWN_MS: "0",
      });
      assert.equal(exchange.code, 5, exchange.stderr);
      assert.equal(exchange.stdout, "");
      assert.equal(
        exchange.stderr.trimEnd().split("\n").at(-1),
        "agent-runner-auth: The token endpoint answered HTTP 500",
      );
      // The code is single-use: no retry of the exchange, the user signs in again.
      assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
      assert.deepEqual(await stored(world), { access: null, refresh: null });
      assert.equal(loginState(world)?.status, "failed");
      assertNoSecrets(world, [refused.stderr, exchange.stderr, ...(await writtenFiles(world))]);
    } finally {
      await world.close();
    }
  },
});
