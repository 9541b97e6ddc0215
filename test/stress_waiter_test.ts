/**
 * The waiter that gave up under load (issue 11 #8), reproduced: in a full `.ci/run` on a loaded
 * 2-core machine, one of 16 parallel `token` calls after expiry (rotation on) printed "Waiting
 * for another agent-runner-auth…" and then "Not signed in, and cannot sign in here".
 *
 * The cause, traced with `-v` under two CPU hogs (10 rounds: rounds 2–9 failed): the lock
 * holder's refresh grant was carried out by the server, but its answer was read only after the
 * request's timer had fired, late, on a machine too busy to run us ("no answer after 2323 ms"
 * for a 2000 ms bound). The retry sent the refresh token the server had just replaced (rotation,
 * no grace period): `invalid_grant`, so both tokens were removed, and every waiter behind it
 * found an empty store. Timeouts now count only the time this process was run (`patientTimer`
 * in `ffi/timeout.ts`); an `invalid_grant` after an unanswered attempt says the reply was
 * lost; and the world's request bound is the product's 10 s, not 2 s (`test/harness.ts`).
 *
 * Beside it, under this load libsecret's first call (16 sessions opened together at the
 * single-threaded keyring) can outlast the 3 s store default: exit 4, a true one-line error,
 * not a lost session. The world's store bound is therefore 30 s, as in the benchmark; the hung
 * store has its own tests (`test/fault_store_test.ts`).
 *
 * Bounded by work, never by time: a fixed number of rounds and callers; no sleeps.
 */
import assert from "node:assert/strict";
import { startCpuHogs } from "./fixtures/cpu_hogs.ts";
import { plant } from "./fixtures/fault_kit.ts";
import { secretServiceTest, World } from "./harness.ts";

const CALLERS = 16;
const ROUNDS = 3;
const HOGS = 2;

secretServiceTest(
  "stress: the waiter that gave up under load - 16 callers after expiry, rotation on, two CPU hogs, 3 rounds: every caller prints the one refreshed token (issue 11 #8)",
  async () => {
    const world = await World.create({ server: { rotation: true } });
    const hogs = startCpuHogs(HOGS);
    try {
      let token = (await world.runInTerminal(["token"])).stdout.trim();
      assert.ok(token, "signed in");
      for (let round = 1; round <= ROUNDS; round++) {
        await plant(world, { access: { token, leftMs: -60_000 } });
        world.server.resetCounters();
        const runs = await Promise.all(
          Array.from({ length: CALLERS }, () => world.run(["token"], {}, 300_000)),
        );
        const failed = runs.filter((r) => r.code !== 0);
        assert.deepEqual(
          failed.map((r) => `exit ${r.code}: ${r.stderr.trim()}`),
          [],
          `round ${round}: every caller succeeds`,
        );
        const printed = new Set(runs.map((r) => r.stdout));
        assert.equal(printed.size, 1, `round ${round}: one token for all`);
        assert.equal(world.server.counters.tokenByGrant.refresh_token, 1, `round ${round}`);
        const next = [...printed][0].trim();
        assert.notEqual(next, token, `round ${round}: refreshed`);
        token = next;
        const stored = JSON.parse((await world.secretTool("agent-runner-refresh-token"))!);
        assert.equal(stored.refresh_token, world.server.issued.refresh.at(-1), "rotated, stored");
      }
    } finally {
      await hogs.stop();
      await world.close();
    }
  },
);
