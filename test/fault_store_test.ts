/**
 * Fault suite, part 5: a Secret Service that never answers (a D-Bus name that accepts every
 * call and stalls: test/fixtures/stall_secret_service.ts) and one that is not there at all. The
 * CLI must end within `AGENT_RUNNER_STORE_TIMEOUT_MS` plus its start-up, not after GDBus' own
 * 25 s, with one line saying what hung and which variable sets the limit (SPEC.md §4), even
 * though the native call is still pending on an FFI thread.
 */
import assert from "node:assert/strict";
import { World } from "./harness.ts";
import {
  type SecretServiceHandle,
  secretServiceTestOptions,
  startSecretService,
} from "./fixtures/secret_service.ts";
import { assertOneLineFailure } from "./fixtures/fault_kit.ts";

const STORE_TIMEOUT_MS = 600;
/** Start-up and exit of the CLI on a loaded 2-core CI machine, generously. */
const STARTUP_SLACK_MS = 4000;

Deno.test({
  name: "fault: a Secret Service that never answers: exit 4 within the store timeout, one line",
  ...secretServiceTestOptions(),
  fn: async (t) => {
    const world = await World.create();
    let stall: SecretServiceHandle | undefined;
    let none: SecretServiceHandle | undefined;
    try {
      stall = await startSecretService({ provider: "stall" });
      const stalled = {
        DBUS_SESSION_BUS_ADDRESS: stall.env.DBUS_SESSION_BUS_ADDRESS,
        AGENT_RUNNER_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
      };

      await t.step("pinned secret-service: the lookup times out", async () => {
        await world.writeConfig({ store: "secret-service" });
        const r = await world.run(["token"], stalled, 30_000);
        assertOneLineFailure(
          r,
          4,
          new RegExp(
            `^agent-runner-auth: Secret Service did not answer within ${STORE_TIMEOUT_MS} ms \\(lookup\\): a keyring unlock prompt may be waiting, or the service is hung; AGENT_RUNNER_STORE_TIMEOUT_MS sets the limit$`,
            "m",
          ),
        );
        assert.ok(r.ms >= STORE_TIMEOUT_MS, `ended after ${r.ms} ms, before the timeout`);
        assert.ok(r.ms < STORE_TIMEOUT_MS + STARTUP_SLACK_MS, `ended after ${r.ms} ms`);
      });

      await t.step("store auto: the probe times out, and the error says so", async () => {
        await world.writeConfig();
        const r = await world.run(["token"], stalled, 30_000);
        assertOneLineFailure(r, 4, /Secret Service.*did not answer within 600 ms/);
        assert.ok(r.ms < 2 * STORE_TIMEOUT_MS + STARTUP_SLACK_MS, `ended after ${r.ms} ms`);
      });

      none = await startSecretService({ provider: "none" });
      await t.step("nothing owns org.freedesktop.secrets: exit 4 at once, naming it", async () => {
        await world.writeConfig({ store: "secret-service" });
        const r = await world.run(["token"], {
          DBUS_SESSION_BUS_ADDRESS: none!.env.DBUS_SESSION_BUS_ADDRESS,
        });
        assertOneLineFailure(
          r,
          4,
          /No Secret Service is running: nothing provides org\.freedesktop\.secrets on the D-Bus session bus/,
        );
        assert.ok(r.ms < STARTUP_SLACK_MS, `ended after ${r.ms} ms`);
      });
    } finally {
      await Promise.allSettled([stall?.stop(), none?.stop()]);
      await world.close();
    }
  },
});
