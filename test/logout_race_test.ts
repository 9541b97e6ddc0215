/**
 * `logout` against a `token` call in flight (issue 11 #1, SPEC.md §1.4). Before the fix logout
 * read, revoked and deleted without the lock: a refresh in flight then stored its fresh tokens
 * after "removed 2 items", and `status` said signed in; in the other order, a `token` call that
 * had begun before the logout opened a browser right after it.
 *
 * The races are set up by events: the server holds the refresh (or the revocation) until the
 * test opens the gate, after the other process has said it waits. No sleeps.
 */
import assert from "node:assert/strict";
import {
  directRefresh,
  directSignIn,
  plant,
  startCli,
  startInTerminal,
  stored,
  waitUntil,
} from "./fixtures/fault_kit.ts";
import { secretServiceTest, World } from "./harness.ts";

/** For the process whose request the server holds: it must not give up on it first. */
const PATIENT = { AGENT_RUNNER_HTTP_TIMEOUT_MS: "600000" };

/** A gate: `hold` stays pending until `open()`. */
function gate(): { hold: Promise<void>; open: () => void } {
  let open!: () => void;
  const hold = new Promise<void>((resolve) => open = resolve);
  return { hold, open };
}

secretServiceTest(
  "logout race: logout during a slow refresh waits for it, then revokes the new tokens and removes them: store empty, status signed out, no browser (issue 11 #1)",
  async () => {
    const world = await World.create({ server: { rotation: true } });
    const refresh = gate();
    try {
      const signIn = await directSignIn(world);
      await plant(world, {
        access: { token: signIn.access, leftMs: -60_000 },
        refresh: signIn.refresh,
      });
      world.server.setFault("token", { hold: refresh.hold, times: 1 });

      // `token` in a terminal with a browser: a login could open one, and must not.
      // The held request must outlast the client's own timeout, however slow the machine.
      const token = startInTerminal(world, ["token"], PATIENT, 600_000);
      await waitUntil(
        () => world.server.counters.tokenByGrant.refresh_token === 1,
        300_000,
        "the refresh",
      );
      const logout = startCli(world, ["logout"], {}, 600_000);
      await logout.waitForStderr(
        /Waiting for another agent-runner-auth \(profile default\) to finish before signing out…/,
        300_000,
      );
      refresh.open();

      const [t, l] = await Promise.all([token.done, logout.done]);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(l.code, 0, l.stderr);
      assert.match(
        l.stderr,
        /Signed out of profile default: refresh token revoked at .*; removed 2 items/,
      );
      // Logout saw the refresh's result: the rotated refresh token is the one revoked.
      const rotated = world.server.issued.refresh.at(-1)!;
      assert.notEqual(rotated, signIn.refresh);
      await assert.rejects(directRefresh(world, rotated), /invalid_grant/);
      assert.deepEqual(await stored(world), { access: null, refresh: null });
      const status = await world.run(["status"]);
      assert.equal(status.code, 1, "status: signed out");
      assert.equal(await world.browserLaunches(), 0);
    } finally {
      refresh.open();
      await world.close();
    }
  },
);

secretServiceTest(
  "logout race: a token call waiting behind logout does not sign straight back in (no browser), it says it was signed out (issue 11 #1)",
  async () => {
    const world = await World.create();
    const revoke = gate();
    try {
      const signIn = await directSignIn(world);
      await plant(world, {
        access: { token: signIn.access, leftMs: -60_000 },
        refresh: signIn.refresh,
      });
      world.server.resetCounters();
      world.server.setFault("revoke", { hold: revoke.hold, times: 1 });

      const logout = startCli(world, ["logout"], PATIENT, 600_000);
      await waitUntil(() => world.server.counters.revoke === 1, 300_000, "the revocation");
      const token = startInTerminal(world, ["token"], {}, 600_000);
      await token.waitForStderr(/Waiting for another agent-runner-auth/, 300_000);
      revoke.open();

      const [l, t] = await Promise.all([logout.done, token.done]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal(t.code, 1, t.stderr);
      assert.match(
        t.stderr,
        /Signed out by `agent-runner-auth logout` \(pid \d+\) while this call was under way; run `agent-runner-auth login` to sign in again/,
      );
      assert.equal(t.stdout, "");
      assert.equal(await world.browserLaunches(), 0, "no browser after logout");
      assert.equal(world.server.counters.authorize, 0);
      assert.deepEqual(await stored(world), { access: null, refresh: null });
    } finally {
      revoke.open();
      await world.close();
    }
  },
);
