/**
 * `status`, `logout`, `refresh` and profiles end to end: the real CLI against the test server
 * and a private Secret Service (see test/harness.ts).
 */
import assert from "node:assert/strict";
import { cliArgv, secretServiceTest, World } from "./harness.ts";

const ACCESS = "agent-runner-access-token";
const REFRESH = "agent-runner-refresh-token";

secretServiceTest(
  "e2e: status before and after login; --json is stable and never holds a token",
  async () => {
    const world = await World.create();
    try {
      const before = await world.run(["status", "--json"]);
      assert.equal(before.code, 1, before.stderr);
      const b = JSON.parse(before.stdout);
      assert.equal(b.version, 1);
      assert.equal(b.profiles[0].signed_in, false);
      assert.equal(b.profiles[0].access_token.present, false);

      await world.runInTerminal(["token"]);
      const after = await world.run(["status", "--json"]);
      assert.equal(after.code, 0, after.stderr);
      const a = JSON.parse(after.stdout);
      const p = a.profiles[0];
      assert.deepEqual(Object.keys(p), [
        "profile",
        "tenant_url",
        "auth_domain",
        "client_id",
        "store",
        "signed_in",
        "user",
        "access_token",
        "refresh_token",
        "error",
      ]);
      assert.equal(p.profile, "default");
      assert.equal(p.store, "secret-service");
      assert.equal(p.user.email, world.server.user.email);
      assert.ok(p.access_token.expires_in_seconds > 3500);
      assert.equal(p.refresh_token.present, true);
      for (const t of world.server.allIssuedTokens()) {
        assert.ok(
          !after.stdout.includes(t) && !after.stderr.includes(t),
          "status never prints a token",
        );
      }
      const human = await world.run(["status"]);
      assert.equal(human.code, 0);
      assert.equal(human.stderr, "", "the report is the answer: stdout");
      assert.match(human.stdout, /Profile default: signed in/);
      assert.match(
        human.stdout,
        new RegExp(`user +${world.server.user.email.replace(".", "\\.")}`),
      );
    } finally {
      await world.close();
    }
  },
);

secretServiceTest("e2e: logout revokes at the server and leaves no item in the store", async () => {
  const world = await World.create();
  try {
    await world.runInTerminal(["token"]);
    const refreshToken = world.server.issued.refresh[0];
    world.server.resetCounters();
    const r = await world.run(["logout"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /Signed out of profile default: refresh token revoked at 127\.0\.0\.1:\d+; removed 2 items/,
    );
    assert.equal(world.server.counters.revoke, 1);
    assert.equal(await world.secretTool(ACCESS), null);
    assert.equal(await world.secretTool(REFRESH), null);
    assert.ok(!r.stderr.includes(refreshToken));
    // The revoked token no longer refreshes: the server agrees the session is over.
    const token = await world.run(["token"]);
    assert.equal(token.code, 1);
  } finally {
    await world.close();
  }
});

secretServiceTest(
  "e2e: logout retries a 503 and deletes local tokens even when the server is down",
  async () => {
    const world = await World.create();
    try {
      await world.runInTerminal(["token"]);
      world.server.setFault("revoke", { status: 503, times: 1 });
      world.server.resetCounters();
      const retried = await world.run(["logout"]);
      assert.equal(retried.code, 0, retried.stderr);
      assert.equal(world.server.counters.revoke, 2, "one 503, then success");
      assert.match(retried.stderr, /refresh token revoked/);

      await world.runInTerminal(["token"], { AGENT_RUNNER_LOGIN_COOLDOWN_MS: "0" });
      world.server.setFault("revoke", { status: 503 });
      const down = await world.run(["logout"]);
      assert.equal(down.code, 0, down.stderr);
      assert.match(
        down.stderr,
        /could not revoke the refresh token \(The revocation endpoint answered HTTP 503\)/,
      );
      assert.equal(await world.secretTool(REFRESH), null);
      assert.equal(await world.secretTool(ACCESS), null);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: refresh refreshes only when needed, --force always, and never prints a token",
  async () => {
    const world = await World.create();
    try {
      await world.runInTerminal(["token"]);
      world.server.resetCounters();
      const lazy = await world.run(["refresh"]);
      assert.equal(lazy.code, 0, lazy.stderr);
      assert.match(lazy.stderr, /still fresh/);
      assert.equal(world.server.counters.token, 0);
      const forced = await world.run(["refresh", "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(forced.stdout, "");
      assert.match(forced.stderr, /Refreshed the access token/);
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
      world.server.setFault("token", { status: 500 });
      const failing = await world.run(["refresh", "--force"]);
      assert.equal(failing.code, 5, "refresh fails loudly instead of keeping the old token");
      assert.equal(failing.stdout, "");
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: profiles are isolated: own config section, own items, own lock",
  async () => {
    const world = await World.create();
    try {
      await world.runInTerminal(["token"]);
      const login = await world.runInTerminal([
        "login",
        "--profile",
        "staging",
        "--tenant-url",
        "https://staging.proxy.example.com",
        "--auth-domain",
        world.server.url,
        "--client-id",
        "test-client",
        "--redirect-uri",
        world.redirectUri,
      ]);
      assert.equal(login.code, 0, login.stderr);
      const config = JSON.parse(await Deno.readTextFile(`${world.configDir}/config.json`));
      assert.equal(
        config.tenant_url,
        "https://acme.proxy.example.com",
        "default profile untouched",
      );
      assert.equal(config.profiles.staging.tenant_url, "https://staging.proxy.example.com");
      assert.ok(await world.secretTool(`${ACCESS}@staging`));

      const def = await world.run(["token"]);
      const stg = await world.run(["token", "--profile", "staging"]);
      const viaEnv = await world.run(["token"], { AGENT_RUNNER_PROFILE: "staging" });
      assert.equal(def.code, 0);
      assert.equal(stg.code, 0, stg.stderr);
      assert.notEqual(def.stdout, stg.stdout);
      assert.equal(viaEnv.stdout, stg.stdout);

      const out = await world.run(["logout", "--profile", "staging"]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(await world.secretTool(`${ACCESS}@staging`), null);
      assert.ok(await world.secretTool(ACCESS), "logging out of staging leaves default alone");

      const status = JSON.parse((await world.run(["status", "--json"])).stdout);
      assert.deepEqual(
        status.profiles.map((
          p: { profile: string; signed_in: boolean },
        ) => [p.profile, p.signed_in]),
        [
          ["default", true],
          ["staging", false],
        ],
      );
      const all = await world.run(["logout", "--all"]);
      assert.equal(all.code, 0, all.stderr);
      assert.equal(await world.secretTool(ACCESS), null);

      const bad = await world.run(["token", "--profile", "Bad Name"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--profile: "Bad Name" is not a profile name/);
      const missing = await world.run(["token", "--profile", "nope"]);
      assert.equal(missing.code, 3);
      assert.match(missing.stderr, /there is no profile "nope"/);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "e2e: a token failure is appended to the log file, with no secret in it",
  async () => {
    const world = await World.create();
    try {
      await world.runInTerminal(["token"]);
      world.server.revokeAll();
      await world.run(["refresh", "--force"]);
      const r = await world.run(["token"], { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3600000" });
      void r;
      const log = await Deno.readTextFile(`${world.configDir}/agent-runner-auth.log`);
      assert.match(
        log,
        /^\d{4}-\d\d-\d\dT[\d:.]+Z (refresh|token) \[default\] exit 1: The sign-in session expired or was revoked/m,
      );
      for (const t of world.server.allIssuedTokens()) {
        assert.ok(
          !log.includes(t),
          "no token in the log",
        );
      }
    } finally {
      await world.close();
    }
  },
);

Deno.test("e2e: status and status --json handle every config error alike: exit 3, one JSON object", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/config.json`;
    const run = async (args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [...cliArgv(), ...args],
        env: { HOME: dir, AGENT_RUNNER_CONFIG_DIR: dir, NO_COLOR: "1", AGENT_RUNNER_STORE: "pass" },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const d = new TextDecoder();
      return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
    };
    const base = { tenant_url: "https://t.example", auth_domain: "auth.example.com" };
    const cases: [string, string | null, RegExp][] = [
      ["no file", null, /does not exist/],
      ["invalid JSON", "{\n  oops\n}\n", /config\.json:2: invalid JSON/],
      ["missing client_id", JSON.stringify(base), /field "client_id" is missing/],
      [
        "bad tenant_url",
        JSON.stringify({ ...base, client_id: "c", tenant_url: "http://x.example" }),
        /field "tenant_url" must use https/,
      ],
    ];
    for (const [name, text, reason] of cases) {
      if (text === null) await Deno.remove(path).catch(() => {});
      else await Deno.writeTextFile(path, text);
      const json = await run(["status", "--json"]);
      assert.equal(json.code, 3, `${name}: ${json.stderr}`);
      const body = JSON.parse(json.stdout);
      assert.equal(body.version, 1);
      assert.match(body.error, reason, name);
      assert.equal(json.stderr.trimEnd().split("\n").length, 1, `${name}: one stderr line`);
      const human = await run(["status"]);
      assert.equal(human.code, 3, name);
      assert.match(human.stderr, reason, name);
      assert.doesNotMatch(human.stdout, /NOT signed in/, name);
      if (text !== null) assert.equal(await Deno.readTextFile(path), text, "left alone");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
