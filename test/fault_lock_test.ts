/**
 * Fault suite, part 2: the exclusive lock and the login state under crashes and abandoned logins
 * (SPEC.md §1.4): a lock holder SIGKILLed during a refresh or during a browser login leaves no
 * stale lock, its waiters proceed, a waiter behind a failed or abandoned login never opens a
 * second browser, and the cooldown after an abandoned login holds and then expires.
 */
import assert from "node:assert/strict";
import { World } from "./harness.ts";
import { secretServiceTestOptions } from "./fixtures/secret_service.ts";
import { PosixLockFile } from "../src/lock/posix.ts";
import {
  assertNoSecrets,
  assertOneLineFailure,
  assertToken,
  directSignIn,
  loginState,
  plant,
  startCli,
  startInTerminal,
  stored,
  waitUntil,
  writtenFiles,
} from "./fixtures/fault_kit.ts";

const WAITING_REFRESH = /Waiting for another agent-runner-auth to finish refreshing the token…/;
const ENV = {
  AGENT_RUNNER_HTTP_TIMEOUT_MS: "8000",
  AGENT_RUNNER_LOCK_TIMEOUT_MS: "20000",
};

/** The lock is free right now: nobody (dead or alive) holds it. */
function assertLockFree(world: World): void {
  const held = new PosixLockFile(`${world.configDir}/lock`).tryAcquire();
  assert.ok(held, "the lock is free (no stale lock)");
  held.release();
}

Deno.test({
  name: "fault: SIGKILL of the process refreshing under the lock: waiters proceed, " +
    "one more refresh, no stale lock",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    const stderrs: string[] = [];
    try {
      const signIn = await directSignIn(world);
      await plant(world, {
        access: { token: signIn.access, leftMs: -60_000 },
        refresh: signIn.refresh,
      });
      // The holder's request hangs at the server; the waiters' requests do not.
      world.server.setFault("token", { delayMs: 30_000, times: 1 });
      world.server.resetCounters();

      const holder = startCli(world, ["token"], ENV);
      await waitUntil(() => world.server.counters.tokenByGrant.refresh_token === 1, 15_000, "A");
      const waiters = [startCli(world, ["token"], ENV), startCli(world, ["token"], ENV)];
      for (const w of waiters) await w.waitForStderr(WAITING_REFRESH);
      holder.kill("SIGKILL");
      const killed = await holder.done;
      stderrs.push(killed.stderr);
      assert.equal(killed.code, 137, "SIGKILL");

      const results = await Promise.all(waiters.map((w) => w.done));
      const tokens = results.map((r) => assertToken(r, world));
      for (const r of results) stderrs.push(r.stderr);
      assert.equal(tokens[0], tokens[1], "both waiters print the same token");
      assert.equal(
        world.server.counters.tokenByGrant.refresh_token,
        2,
        "exactly one refresh after the killed one",
      );
      for (const r of results) {
        // Each said once what it waited for, and nothing else.
        assert.match(r.stderr, /^agent-runner-auth: Waiting for another [^\n]*\n$/);
      }
      assert.equal((await stored(world)).access, tokens[0]);
      assertLockFree(world);

      const after = await world.run(["token"], ENV);
      assert.equal(assertToken(after, world), tokens[0]);
      assert.equal(after.stderr, "", "no wait, no warning: nothing stale left");
      assertNoSecrets(world, [...stderrs, after.stderr, ...(await writtenFiles(world))]);
    } finally {
      await world.close();
    }
  },
});

Deno.test({
  // Bug pinned here: a waiter only refused a second browser when the dead holder's `in_progress`
  // record was written less than 1 s before it began waiting; past that, and with no cooldown
  // left, it opened a browser of its own.
  name: "fault: SIGKILL of the process holding the lock during a browser login: the waiter " +
    "opens no second browser (even past the cooldown), then a fresh call signs in",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    const stderrs: string[] = [];
    try {
      // The user never finishes the first sign-in.
      const holder = startInTerminal(world, ["token"], { ...ENV, TEST_BROWSER_MODE: "abandon" });
      await waitUntil(() => loginState(world)?.status === "in_progress", 15_000, "login");
      const holderPid = loginState(world)!.pid;
      await waitUntil(() => /If it does not open, visit/.test(holder.stderr()), 15_000, "URL");

      // A second caller arrives well after the login began; the cooldown would not stop it.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const waiter = startInTerminal(world, ["token"], {
        ...ENV,
        AGENT_RUNNER_LOGIN_COOLDOWN_MS: "0",
      });
      await waiter.waitForStderr(/Waiting for another agent-runner-auth \(pid \d+\) to finish/);
      Deno.kill(holderPid, "SIGKILL");
      const killed = await holder.done;
      stderrs.push(killed.stderr);
      assert.equal(killed.code, 137);

      const r = await waiter.done;
      stderrs.push(r.stderr);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, "");
      const last = r.stderr.trimEnd().split("\n").at(-1)!;
      assert.match(
        last,
        new RegExp(
          `^agent-runner-auth: The browser sign-in started by another agent-runner-auth process \\(pid ${holderPid}\\) was abandoned; run \`agent-runner-auth login\`$`,
        ),
      );
      assert.equal(await world.browserLaunches(), 1, "no second browser");
      assertLockFree(world);

      // A new call that did not wait behind it may sign in (no cooldown configured).
      const fresh = await world.runInTerminal(["token"], {
        ...ENV,
        AGENT_RUNNER_LOGIN_COOLDOWN_MS: "0",
      });
      stderrs.push(fresh.stderr);
      assertToken(fresh, world);
      assert.equal(await world.browserLaunches(), 2);
      assertNoSecrets(world, [...stderrs, ...(await writtenFiles(world))]);
    } finally {
      await world.close();
    }
  },
});

Deno.test({
  name: "fault: a waiter behind an abandoned login opens no browser; the cooldown holds, " +
    "then expires",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    const stderrs: string[] = [];
    try {
      const holder = startInTerminal(world, ["token"], {
        ...ENV,
        TEST_BROWSER_MODE: "abandon",
        // Long enough for the waiter to start and queue up even on a loaded CI machine.
        AGENT_RUNNER_LOGIN_TIMEOUT_MS: "3000",
      });
      await waitUntil(() => loginState(world)?.status === "in_progress", 15_000, "login");
      const waiter = startInTerminal(world, ["token"], ENV);
      await waiter.waitForStderr(/Waiting for another agent-runner-auth \(pid \d+\) to finish/);

      const timedOut = await holder.done;
      stderrs.push(timedOut.stderr);
      assert.equal(timedOut.code, 8, timedOut.stderr);
      assert.match(
        timedOut.stderr.trimEnd().split("\n").at(-1)!,
        /^agent-runner-auth: Sign-in timed out after 3 s without a callback; run `agent-runner-auth login` to try again$/,
      );
      assert.equal(loginState(world)?.status, "abandoned");

      const behind = await waiter.done;
      stderrs.push(behind.stderr);
      assert.equal(behind.code, 1, behind.stderr);
      assert.equal(behind.stdout, "");
      assert.match(
        behind.stderr.trimEnd().split("\n").at(-1)!,
        /^agent-runner-auth: The browser sign-in started by another agent-runner-auth process \(pid \d+\) was abandoned; run `agent-runner-auth login`$/,
      );
      assert.equal(await world.browserLaunches(), 1, "the waiter opened no browser");

      // Within the cooldown (default 60 s) a new caller opens none either.
      const cooled = await world.runInTerminal(["token"], ENV);
      stderrs.push(cooled.stderr);
      assertOneLineFailure(
        cooled,
        1,
        /A browser sign-in was abandoned \d+ s ago, so none is opened for another \d+ s; run `agent-runner-auth login`$/m,
      );
      assert.equal(await world.browserLaunches(), 1);

      // A short cooldown that has passed: the next caller signs in.
      const state = loginState(world)!;
      const cooldown = 300;
      await waitUntil(() => Date.now() - state.at > cooldown, 5_000, "cooldown");
      const after = await world.runInTerminal(["token"], {
        ...ENV,
        AGENT_RUNNER_LOGIN_COOLDOWN_MS: String(cooldown),
      });
      stderrs.push(after.stderr);
      const token = assertToken(after, world);
      assert.equal(await world.browserLaunches(), 2);
      assert.equal((await stored(world)).access, token);
      assert.equal(loginState(world)?.status, "succeeded");
      assertLockFree(world);
      assertNoSecrets(world, [...stderrs, ...(await writtenFiles(world))]);
    } finally {
      await world.close();
    }
  },
});

Deno.test({
  name: "fault: a lock held too long: exit 7 naming the lock file; with a usable token, that " +
    "token is printed with a warning",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    const lockPath = `${world.configDir}/lock`;
    const held = new PosixLockFile(lockPath).tryAcquire();
    assert.ok(held);
    const stderrs: string[] = [];
    try {
      const signIn = await directSignIn(world);
      const env = { ...ENV, AGENT_RUNNER_LOCK_TIMEOUT_MS: "800" };
      await plant(world, {
        access: { token: signIn.access, leftMs: -60_000 },
        refresh: signIn.refresh,
      });
      world.server.resetCounters();
      const r = await world.run(["token"], env);
      stderrs.push(r.stderr);
      assert.equal(r.code, 7, r.stderr);
      assert.equal(r.stdout, "");
      assert.deepEqual(r.stderr.trimEnd().split("\n"), [
        "agent-runner-auth: Waiting for another agent-runner-auth to finish refreshing the token…",
        `agent-runner-auth: Timed out after 800 ms waiting for the lock file ${lockPath}: another agent-runner-auth process holds it`,
      ]);
      assert.equal(world.server.counters.token, 0);
      assert.equal((await stored(world)).refresh, signIn.refresh);

      await plant(world, { access: { token: signIn.access, leftMs: 3 * 60_000 } });
      const usable = await world.run(["token"], env);
      stderrs.push(usable.stderr);
      assert.equal(assertToken(usable, world), signIn.access);
      assert.match(
        usable.stderr.trimEnd().split("\n").at(-1)!,
        /Timed out after 800 ms waiting for the lock file .*; printing the current token, valid for 2 more minutes$/,
      );
      assertNoSecrets(world, [...stderrs, ...(await writtenFiles(world))]);
    } finally {
      held.release();
      await world.close();
    }
  },
});
