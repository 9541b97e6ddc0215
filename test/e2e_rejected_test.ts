/**
 * A token the API rejected is not served again (SPEC.md §1.6), through the real CLI, the
 * private Secret Service and the test server. Claude Code's side is imitated here by the
 * environment it gives its helper (`CLAUDE_CODE_ENTRYPOINT`, a per-process
 * `CLAUDE_CODE_MESSAGING_SOCKET`); the real Claude Code runs the same cases in
 * test/claude_code_test.ts.
 */
import assert from "node:assert/strict";
import { secretServiceTest, World } from "./harness.ts";
import { assertOneLineFailure, assertToken, directSignIn, plant } from "./fixtures/fault_kit.ts";

/** The environment Claude Code process `n` gives its helper (2.1.332). */
function claude(n: number): Record<string, string> {
  return {
    CLAUDE_CODE_ENTRYPOINT: "sdk-cli",
    CLAUDE_CODE_MESSAGING_SOCKET: `/tmp/cc-socks/${1000 + n}.sock`,
    CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3300000",
  };
}

async function signedIn(): Promise<{ world: World; access: string }> {
  const world = await World.create();
  const t = await directSignIn(world);
  await plant(world, { access: { token: t.access, leftMs: 3_600_000 }, refresh: t.refresh });
  world.server.resetCounters();
  return { world, access: t.access };
}

secretServiceTest(
  "rejected token: Claude's second ask gets a new token (one grant); the record holds no token",
  async () => {
    const { world, access } = await signedIn();
    try {
      assert.equal(assertToken(await world.run(["token"], claude(1)), world), access);
      const second = assertToken(await world.run(["token"], claude(1)), world);
      assert.notEqual(second, access, "the rejected token is not printed again");
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
      const record = await Deno.readTextFile(`${world.configDir}/last-print.json`);
      assert.ok(!record.includes(access) && !record.includes(second), "a hash, never a token");
      // The fresh token rejected too: one line saying so and what to do; no further grant.
      assertOneLineFailure(
        await world.run(["token"], claude(1)),
        1,
        /rejected the token again.*agent-runner-auth login/,
      );
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "rejected token: other sessions, scripts and Claude's Bash tool cause no refresh",
  async () => {
    const { world, access } = await signedIn();
    try {
      for (let n = 1; n <= 4; n++) {
        assert.equal(assertToken(await world.run(["token"], claude(n)), world), access);
      }
      for (let i = 0; i < 3; i++) {
        assert.equal(assertToken(await world.run(["token"]), world), access, "a script");
        assert.equal(
          assertToken(await world.run(["token"], { ...claude(9), CLAUDECODE: "1" }), world),
          access,
          "a command in Claude's Bash tool",
        );
      }
      assert.equal(world.server.counters.tokenByGrant.refresh_token, 0);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest("rejected token: no refresh token -> one line naming login, exit 1", async () => {
  const world = await World.create();
  try {
    const t = await directSignIn(world);
    await plant(world, { access: { token: t.access, leftMs: 3_600_000 } });
    assertToken(await world.run(["token"], claude(1)), world);
    assertOneLineFailure(
      await world.run(["token"], claude(1)),
      1,
      /rejected the token and there is no refresh token.*agent-runner-auth login/,
    );
  } finally {
    await world.close();
  }
});
