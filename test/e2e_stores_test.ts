/**
 * `token` end to end with the other Linux stores (issue 3): the core scenarios of
 * `e2e_token_test.ts` (interactive login, cached, refresh, 16 parallel first calls → one login,
 * invalid_grant clears) with `AGENT_RUNNER_STORE=pass` (a throw-away GPG key and password store)
 * and `AGENT_RUNNER_STORE=encrypted-file`, then the selector through the real CLI: pinning at
 * login, a pinned store that went away, and `auto` without a Secret Service.
 *
 * Every world also runs the private Secret Service, so each test can check that nothing fell
 * back to it silently.
 */
import assert from "node:assert/strict";
import { assertFailure, assertToken, plant } from "./fixtures/fault_kit.ts";
import { type RunResult, World, type WorldStore } from "./harness.ts";
import { passTestOptions } from "./fixtures/pass.ts";
import { secretServiceTestOptions } from "./fixtures/secret_service.ts";

const ACCESS = "agent-runner-access-token";
const REFRESH = "agent-runner-refresh-token";
const WEAKER =
  /^agent-runner-auth: Tokens are kept in an encrypted file in .* \(store "encrypted-file"\), which is weaker than an OS keychain: /;

/** Needs the Secret Service fixture always, and real pass for the pass worlds. */
function storeTest(name: string, needsPass: boolean, fn: () => Promise<void>): void {
  const ignore = secretServiceTestOptions().ignore || (needsPass && passTestOptions().ignore);
  Deno.test({ name, ignore, fn });
}

/**
 * stderr of a successful cached `token`: nothing, whatever the store. The encrypted file's
 * "weaker than a keychain" notice belongs to login, status and doctor; a helper's stderr is
 * Claude Code's one error line (SPEC.md §1.1).
 */
function assertQuietStderr(r: RunResult, _store: WorldStore): void {
  assert.equal(r.stderr, "");
}

/** Nothing reached the Secret Service: the chosen store was used, not a fallback. */
async function assertSecretServiceUntouched(world: World): Promise<void> {
  assert.equal(await world.secretTool(ACCESS), null, "no access token in the Secret Service");
  assert.equal(await world.secretTool(REFRESH), null, "no refresh token in the Secret Service");
}

for (const store of ["pass", "encrypted-file"] as const) {
  const needsPass = store === "pass";

  storeTest(
    `e2e [${store}]: login in a terminal, cached, refreshed, then invalid_grant clears the store`,
    needsPass,
    async () => {
      const world = await World.create({ store });
      try {
        // interactive login (no TTY on std streams, /dev/tty available, $BROWSER = test browser)
        const token = assertToken(await world.runInTerminal(["token"]), world);
        assert.equal(await world.browserLaunches(), 1);
        assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
        assert.equal(JSON.parse((await world.readItem(ACCESS))!).access_token, token);
        assert.ok((await world.readItem(REFRESH))!.includes(world.server.issued.refresh[0]));
        await assertSecretServiceUntouched(world);
        if (store === "encrypted-file") {
          for (const f of ["store.key", `tokens/${ACCESS}.enc`, `tokens/${REFRESH}.enc`]) {
            const mode = (await Deno.stat(`${world.configDir}/${f}`)).mode! & 0o777;
            assert.equal(mode, 0o600, `${f} is 0600`);
          }
        }

        // cached: no request at all
        world.server.resetCounters();
        const cached = await world.run(["token"]);
        assert.equal(assertToken(cached, world), token);
        assertQuietStderr(cached, store);
        assert.deepEqual([world.server.counters.token, world.server.counters.authorize], [0, 0]);
        if (store === "encrypted-file") {
          // `status` (like login and doctor) says the file store is weaker than a keychain
          const status = await world.run(["status"]);
          assert.match(status.stderr, WEAKER);
        }

        // silent refresh: the stored access token is too close to expiry
        await plant(world, { access: { token: token, leftMs: 2 * 60_000 } });
        const refreshed = await world.run(["token"]);
        const newToken = assertToken(refreshed, world);
        assert.notEqual(newToken, token);
        assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
        assert.equal(JSON.parse((await world.readItem(ACCESS))!).access_token, newToken);

        // invalid_grant: both items removed, exit 1 when non-interactive
        await plant(world, { access: { token: newToken, leftMs: -60_000 } });
        world.server.revokeAll();
        const revoked = await world.run(["token"]);
        assertFailure(
          revoked,
          1,
          /The sign-in session expired or was revoked \(stored tokens removed\), and cannot sign in here: .*agent-runner-auth login/,
        );
        assert.equal(await world.readItem(ACCESS), null);
        assert.equal(await world.readItem(REFRESH), null);
        await assertSecretServiceUntouched(world);
      } finally {
        await world.close();
      }
    },
  );

  storeTest(
    `e2e [${store}]: 16 parallel first calls -> one browser, one code exchange, 16 identical tokens`,
    needsPass,
    async () => {
      const world = await World.create({ store });
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
        assert.equal(JSON.parse((await world.readItem(ACCESS))!).access_token, tokens[0]);
        await assertSecretServiceUntouched(world);
      } finally {
        await world.close();
      }
    },
  );
}

storeTest(
  "e2e: `login` pins pass; a later `token` uses it without AGENT_RUNNER_STORE",
  true,
  async () => {
    const world = await World.create({ store: "pass" });
    try {
      const login = await world.runInTerminal(["login"]);
      assert.equal(login.code, 0, login.stderr);
      assert.match(login.stderr, /Tokens saved in pass/);
      const saved = JSON.parse(await Deno.readTextFile(`${world.configDir}/config.json`));
      assert.equal(saved.store, "pass");
      // Pinned in the config now: the variable is no longer needed.
      const cached = await world.run(["token"], { AGENT_RUNNER_STORE: "" });
      assertToken(cached, world);
      assert.equal(cached.stderr, "");
      await assertSecretServiceUntouched(world);
    } finally {
      await world.close();
    }
  },
);

storeTest(
  "e2e: a pinned pass store that went away is an error naming it, never a switch",
  true,
  async () => {
    const world = await World.create({ store: "pass" });
    try {
      await world.writeConfig({ store: "pass" });
      const r = await world.run(["token"], {
        AGENT_RUNNER_STORE: "",
        PASSWORD_STORE_DIR: `${world.dir}/no-such-store`,
      });
      assertFailure(
        r,
        4,
        /^agent-runner-auth: The token store "pass" \(pinned by field "store" in .*config\.json\) is unavailable: the password store .*no-such-store is not initialized; run `pass init <gpg-id>`/,
      );
      await assertSecretServiceUntouched(world);
    } finally {
      await world.close();
    }
  },
);

storeTest(
  "e2e: auto without a Secret Service uses an initialized pass, and login pins it",
  true,
  async () => {
    const world = await World.create({ store: "pass" });
    try {
      const noBus = { AGENT_RUNNER_STORE: "", DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent" };
      const login = await world.runInTerminal(["login"], noBus);
      assert.equal(login.code, 0, login.stderr);
      assert.match(login.stderr, /Tokens saved in pass/);
      const saved = JSON.parse(await Deno.readTextFile(`${world.configDir}/config.json`));
      assert.equal(saved.store, "pass");
      assert.ok(await world.readItem(ACCESS));
    } finally {
      await world.close();
    }
  },
);

storeTest(
  "e2e: auto with no Secret Service and no pass -> one line listing every option, exit 4",
  false,
  async () => {
    const world = await World.create();
    try {
      const r = await world.run(["token"], {
        DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent",
        PASSWORD_STORE_DIR: `${world.dir}/no-such-store`,
      });
      assertFailure(
        r,
        4,
        /^agent-runner-auth: No token store is available \(Secret Service: No Secret Service is running: .*; pass: .*\): start an unlocked Secret Service .*, or install pass and run `pass init <gpg-id>`, or set AGENT_RUNNER_STORE=encrypted-file for an encrypted file in .* \(weaker than a keychain\)$/,
      );
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, "one line");
      assert.equal(world.server.counters.authorize, 0);
    } finally {
      await world.close();
    }
  },
);

storeTest(
  "e2e: AGENT_RUNNER_STORE=bogus -> a config error naming the variable and the valid names",
  false,
  async () => {
    const world = await World.create();
    try {
      const r = await world.run(["token"], { AGENT_RUNNER_STORE: "plaintext" });
      assertFailure(
        r,
        3,
        /AGENT_RUNNER_STORE="plaintext" is not a token store; use one of auto, macos-keychain, secret-service, pass, windows-credential-manager, encrypted-file$/,
      );
    } finally {
      await world.close();
    }
  },
);
