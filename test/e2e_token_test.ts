/**
 * `token` end to end: the real CLI as subprocesses (run from source with `deno task cli`'s
 * flags), a real Secret Service (gnome-keyring on a private D-Bus), the Cognito-compatible
 * server on 127.0.0.1, and the test browser as `$BROWSER`. The interactive case runs under a
 * pseudo-terminal with every standard stream redirected, as in Claude Code's TUI.
 */
import assert from "node:assert/strict";
import { assertFailure, assertToken, plant } from "./fixtures/fault_kit.ts";
import { freePort, secretServiceTest, World } from "./harness.ts";

const ACCESS = "agent-runner-access-token";
const REFRESH = "agent-runner-refresh-token";

/** Logs in once through the terminal path and returns the token. */
async function loginViaToken(world: World): Promise<string> {
  return assertToken(await world.runInTerminal(["token"]), world);
}

secretServiceTest(
  "e2e: non-interactive with no tokens -> exit 1, one line naming `login`",
  async () => {
    const world = await World.create();
    try {
      const r = await world.run(["token"]);
      assertFailure(
        r,
        1,
        /^agent-runner-auth: Not signed in, and cannot sign in here: .*run `agent-runner-auth login`$/,
      );
      assert.equal(world.server.counters.authorize, 0);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest("e2e: $CI set -> no browser even with a terminal, exit 1", async () => {
  const world = await World.create();
  try {
    const r = await world.runInTerminal(["token"], { CI: "true" });
    assertFailure(r, 1, /\$CI is set; run `agent-runner-auth login`/);
    assert.equal(await world.browserLaunches(), 0);
  } finally {
    await world.close();
  }
});

secretServiceTest(
  "e2e: the four cases: login in a terminal, cached, refreshed, and stored where secret-tool sees it",
  async () => {
    const world = await World.create();
    try {
      // interactive login (no TTY on std streams, /dev/tty available, $BROWSER = test browser)
      const first = await world.runInTerminal(["token"]);
      const token = assertToken(first, world);
      assert.equal(await world.browserLaunches(), 1);
      assert.equal(world.server.counters.authorize, 1);
      assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
      const stored = JSON.parse((await world.secretTool(ACCESS))!);
      assert.equal(stored.access_token, token);
      assert.ok((await world.secretTool(REFRESH))!.includes(world.server.issued.refresh[0]));
      // config is never written by token
      assert.equal(
        JSON.parse(await Deno.readTextFile(`${world.configDir}/config.json`)).issuer,
        undefined,
      );

      // cached: no request at all
      world.server.resetCounters();
      const cached = await world.run(["token"]);
      assert.equal(assertToken(cached, world), token);
      assert.equal(cached.stderr, "");
      assert.deepEqual(
        [world.server.counters.token, world.server.counters.authorize],
        [0, 0],
        "the cached path makes no request",
      );

      // silent refresh: the stored access token is too close to expiry for the helper TTL
      await plant(world, { access: { token: token, leftMs: 2 * 60_000 } });
      const refreshed = await world.run(["token"]);
      const newToken = assertToken(refreshed, world);
      assert.notEqual(newToken, token);
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
      assert.equal(JSON.parse((await world.secretTool(ACCESS))!).access_token, newToken);
      assert.ok(
        (await world.secretTool(REFRESH))!.includes(world.server.issued.refresh[0]),
        "rotation off: refresh token kept",
      );
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: CLAUDE_CODE_API_KEY_HELPER_TTL_MS=3300000 refreshes a token with 50 min left",
  async () => {
    const world = await World.create();
    try {
      const token = await loginViaToken(world);
      await plant(world, { access: { token: token, leftMs: 50 * 60_000 } });
      world.server.resetCounters();
      const r = await world.run(["token"], { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3300000" });
      assert.notEqual(assertToken(r, world), token);
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: 16 parallel first calls -> one browser, one authorize, one code exchange, 16 identical tokens",
  async () => {
    const world = await World.create();
    try {
      const runs = await Promise.all(
        Array.from(
          { length: 16 },
          () => world.runInTerminal(["token"], { TEST_BROWSER_DELAY_MS: "300" }, 90_000),
        ),
      );
      const tokens = runs.map((r) => assertToken(r, world));
      assert.equal(new Set(tokens).size, 1, "all 16 printed the same token");
      assert.equal(await world.browserLaunches(), 1);
      assert.equal(world.server.counters.authorize, 1);
      assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
      assert.ok(
        runs.some((r) => /Waiting for another agent-runner-auth/.test(r.stderr)),
        "waiters say what they wait for",
      );
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: 16 parallel calls after expiry with rotation on -> exactly one refresh grant",
  async () => {
    const world = await World.create({ server: { rotation: true } });
    try {
      const token = await loginViaToken(world);
      await plant(world, { access: { token: token, leftMs: -60_000 } });
      world.server.resetCounters();
      const runs = await Promise.all(
        Array.from({ length: 16 }, () => world.run(["token"], {}, 90_000)),
      );
      const tokens = runs.map((r) => assertToken(r, world));
      assert.equal(new Set(tokens).size, 1);
      assert.notEqual(tokens[0], token);
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
      const rotated = world.server.issued.refresh.at(-1)!;
      assert.ok(
        (await world.secretTool(REFRESH))!.includes(rotated),
        "the rotated refresh token was stored",
      );
    } finally {
      await world.close();
    }
  },
);

secretServiceTest("e2e: invalid_grant -> tokens cleared, exit 1 when non-interactive", async () => {
  const world = await World.create();
  try {
    const token = await loginViaToken(world);
    await plant(world, { access: { token: token, leftMs: -60_000 } });
    world.server.revokeAll();
    const r = await world.run(["token"]);
    assertFailure(
      r,
      1,
      /The sign-in session expired or was revoked \(stored tokens removed\), and cannot sign in here: .*agent-runner-auth login/,
    );
    assert.equal(await world.secretTool(ACCESS), null);
    assert.equal(await world.secretTool(REFRESH), null);
  } finally {
    await world.close();
  }
});

secretServiceTest(
  "e2e: server down with a still-valid token -> printed with a warning, refresh token kept",
  async () => {
    const world = await World.create();
    try {
      const token = await loginViaToken(world);
      await plant(world, { access: { token: token, leftMs: 3 * 60_000 } });
      await world.writeConfig({ auth_domain: `http://127.0.0.1:${freePort()}` });
      const r = await world.run(["token"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${token}\n`);
      assert.match(
        r.stderr,
        /Could not refresh the token \(Cannot reach the token endpoint.*\); printing the current one, valid for 2 more minutes/,
      );
      assert.ok(await world.secretTool(REFRESH));
    } finally {
      await world.close();
    }
  },
);

secretServiceTest("e2e: server down and the token expired -> exit 5, nothing deleted", async () => {
  const world = await World.create();
  try {
    const token = await loginViaToken(world);
    await plant(world, { access: { token: token, leftMs: -60_000 } });
    await world.writeConfig({ auth_domain: `http://127.0.0.1:${freePort()}` });
    const r = await world.run(["token"]);
    assertFailure(r, 5, /Cannot reach the token endpoint/);
    assert.ok(await world.secretTool(REFRESH), "refresh token survives a network error");
    assert.ok(await world.secretTool(ACCESS));
  } finally {
    await world.close();
  }
});

secretServiceTest(
  "e2e: a corrupt config is reported with file and line and left byte-identical",
  async () => {
    const world = await World.create();
    try {
      const path = `${world.configDir}/config.json`;
      const broken = '{\n  "tenant_url": "https://x.example.com",\n  "client_id": oops\n}\n';
      await Deno.writeTextFile(path, broken);
      const token = await world.run(["token"]);
      assertFailure(
        token,
        3,
        new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:3: invalid JSON`),
      );
      const login = await world.run(["login", "--client-id", "other"]);
      assertFailure(login, 3, /config\.json:3: invalid JSON/);
      assert.equal(await Deno.readTextFile(path), broken);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: `login` writes the config (flags merged, unknown fields kept, issuer and store pinned)",
  async () => {
    const world = await World.create();
    try {
      const path = `${world.configDir}/config.json`;
      await Deno.remove(path);
      await Deno.writeTextFile(path, JSON.stringify({ wizard: { step: 3 } }));
      const r = await world.runInTerminal([
        "login",
        "--tenant-url",
        "https://acme.proxy.example.com",
        "--auth-domain",
        world.server.url,
        "--client-id",
        "test-client",
        "--scope",
        "openid email proxy/invoke",
        "--redirect-uri",
        world.redirectUri,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "", "login prints nothing on stdout");
      assert.match(r.stderr, /Signed in as .*@.*; access token valid until/);
      const saved = JSON.parse(await Deno.readTextFile(path));
      assert.deepEqual(saved.wizard, { step: 3 });
      assert.equal(saved.client_id, "test-client");
      assert.equal(saved.issuer, world.server.issuer);
      assert.equal(saved.store, "secret-service");
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      const cached = await world.run(["token"]);
      assertToken(cached, world);
    } finally {
      await world.close();
    }
  },
);
