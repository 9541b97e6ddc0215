/**
 * Who signed in, and what the browser is given (issue 11 finding 5, issue 13 items 6 and 8),
 * through the real CLI against the local server and a private Secret Service:
 * - the browser's one argument is the listener's one-time start page, never a URL carrying
 *   `state`, `nonce` or the PKCE challenge (its argv is readable by every local user);
 * - with a provider that keeps profile claims in userinfo, `login` (and a refresh when nothing
 *   is known) asks `/oauth2/userInfo` once, and `status` names the user;
 * - `refresh` after an abandoned login speaks of refreshing, not of a browser.
 */
import assert from "node:assert/strict";
import { ROOT, secretServiceTest, World } from "./harness.ts";
import { plant } from "./fixtures/fault_kit.ts";

secretServiceTest(
  "issue 11 finding 5: state, nonce and code_challenge never appear in the browser's argv; " +
    "it is given a one-time loopback start page that redirects to the authorize URL",
  async () => {
    const world = await World.create();
    try {
      const argvLog = `${world.dir}/browser-argv.log`;
      const r = await world.runInTerminal(["token"], {
        BROWSER: `${ROOT}/test/fixtures/argv_browser`,
        ARGV_LOG: argvLog,
      });
      assert.equal(r.code, 0, r.stderr);
      const launches = (await Deno.readTextFile(argvLog)).trim().split("\n").map((l) =>
        JSON.parse(l) as string[]
      );
      assert.equal(launches.length, 1);
      const [argv] = launches;
      assert.equal(argv.length, 1);
      const start = new URL(argv[0]);
      // The listener's own origin, an unguessable path (32 random bytes), no query.
      assert.equal(start.origin, new URL(world.redirectUri).origin);
      assert.match(start.pathname, /^\/start\/[\w-]{43}$/);
      assert.equal(start.search, "");
      assert.equal(world.server.authorizeSecrets.length, 1);
      const secrets = world.server.authorizeSecrets[0];
      for (const [name, value] of Object.entries(secrets)) {
        assert.ok(value, `the authorize request carried ${name}`);
        assert.ok(!argv[0].includes(value), `${name} is in the browser's argv`);
      }
      // The start page was used up by the browser: it answers no one else.
      const again = await fetch(argv[0], { redirect: "manual" }).catch(() => null);
      await again?.body?.cancel();
      assert.ok(again === null || again.status === 410, `start page again: ${again?.status}`);
    } finally {
      await world.close();
    }
  },
);

async function statusUser(world: World): Promise<unknown> {
  const r = await world.run(["status", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  // `status --json` prints one object on stdout (or stderr before issue 13 item 1 lands).
  const text = r.stdout.trim() || r.stderr.trim();
  return JSON.parse(text).profiles[0].user;
}

secretServiceTest(
  "issue 13 item 8: with profile claims only in userinfo, login asks /oauth2/userInfo once, " +
    "names the user, and status shows them; a refresh that names no one asks again only when " +
    "nothing is known",
  async () => {
    const world = await World.create({ server: { profileClaimsInUserInfoOnly: true } });
    try {
      const login = await world.runInTerminal(["login"]);
      assert.equal(login.code, 0, login.stderr);
      assert.match(login.stderr, /Signed in as test\.user@example\.com;/);
      assert.equal(world.server.counters.userInfo, 1);
      assert.deepEqual(await statusUser(world), {
        email: "test.user@example.com",
        username: "test-user",
      });

      // A refresh: the ID token names no one, but the user is known: no second question.
      const refreshed = await world.run(["refresh", "--force"]);
      assert.equal(refreshed.code, 0, refreshed.stderr);
      assert.equal(world.server.counters.userInfo, 1);
      assert.deepEqual(await statusUser(world), {
        email: "test.user@example.com",
        username: "test-user",
      });

      // Nothing known (an access item without a user): the refresh asks userinfo once.
      const rt = world.server.issued.refresh.at(-1)!;
      await plant(world, { access: { token: "stale-token", leftMs: -60_000 }, refresh: rt });
      assert.equal(await statusUser(world), null);
      const token = await world.run(["token"]);
      assert.equal(token.code, 0, token.stderr);
      assert.equal(world.server.counters.userInfo, 2);
      assert.deepEqual(await statusUser(world), {
        email: "test.user@example.com",
        username: "test-user",
      });
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "issue 13 item 8: a failing userinfo is ignored (debug line), the login still succeeds",
  async () => {
    const world = await World.create({
      server: { profileClaimsInUserInfoOnly: true },
      env: { AGENT_RUNNER_LOG: "debug" },
    });
    try {
      world.server.setFault("userInfo", { status: 500 });
      const login = await world.runInTerminal(["login"]);
      assert.equal(login.code, 0, login.stderr);
      assert.match(login.stderr, /debug: userInfo failed after \d+ ms .*; the user stays unknown/);
      assert.match(login.stderr, /Signed in as you;/);
      assert.equal(world.server.counters.userInfo, 1);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "issue 13 item 6: refresh after an abandoned login says what refresh does, not that no " +
    "browser is opened",
  async () => {
    const world = await World.create();
    try {
      await Deno.writeTextFile(
        `${world.configDir}/login-state.json`,
        JSON.stringify({ status: "abandoned", pid: 1, at: Date.now() }),
      );
      const r = await world.run(["refresh"]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(
        r.stderr,
        "agent-runner-auth: Not signed in, and cannot sign in here: `refresh` only renews a stored sign-in; run `agent-runner-auth login`\n",
      );
    } finally {
      await world.close();
    }
  },
);
