/** `doctor` end to end: healthy, then each planted fault is caught with its fix. */
import assert from "node:assert/strict";
import { secretServiceTest, World } from "./harness.ts";

function line(stdout: string, check: string): string {
  const found = stdout.split("\n").find((l) => l.slice(2).startsWith(`${check}:`));
  assert.ok(found, `no "${check}" line in:\n${stdout}`);
  return found!;
}

secretServiceTest(
  "e2e: doctor passes on a healthy setup and catches each planted fault",
  async () => {
    const world = await World.create();
    try {
      await world.runInTerminal(["token"]);
      const setup = await world.run(["setup", "claude"]);
      assert.equal(setup.code, 0, setup.stderr);

      const healthy = await world.run(["doctor"]);
      assert.equal(healthy.code, 0, healthy.stderr);
      assert.equal(healthy.stderr, "", "the report is the answer: stdout");
      assert.match(
        line(healthy.stdout, "store"),
        /^✓ store: secret-service answers; write\+read\+delete took \d+ ms/,
      );
      assert.match(
        line(healthy.stdout, "cached read"),
        /^✓ cached read: straight over D-Bus, encrypted session, in \d+ ms/,
      );
      assert.match(
        line(healthy.stdout, "auth domain"),
        /^✓ auth domain: 127\.0\.0\.1:\d+ answers \(HTTP \d+\); clock offset [+-]\d+ s/,
      );
      assert.match(healthy.stdout, /All checks passed\./);

      // a stray ANTHROPIC_API_KEY silently wins over the helper
      const stray = await world.run(["doctor"], { ANTHROPIC_API_KEY: "sk-ant-secret-value" });
      assert.equal(stray.code, 1);
      assert.match(
        line(stray.stdout, "environment ANTHROPIC_API_KEY"),
        /^✗ .*fix: unset ANTHROPIC_API_KEY/,
      );
      assert.ok(
        !stray.stderr.includes("sk-ant-secret-value") &&
          !stray.stdout.includes("sk-ant-secret-value"),
        "never prints the key",
      );

      // the callback port is taken
      const { hostname, port: portText } = new URL(world.redirectUri);
      const port = Number(portText);
      const squatter = Deno.listen({ hostname, port });
      try {
        const taken = await world.run(["doctor"]);
        assert.equal(taken.code, 1);
        assert.match(
          line(taken.stdout, "callback port"),
          new RegExp(
            `^✗ callback port: ${
              hostname.replaceAll(".", "\\.")
            }:${port} in use.*fix: stop the program using the port`,
          ),
        );
      } finally {
        squatter.close();
      }

      // the store is unreachable
      const noStore = await world.run(["doctor"], {
        DBUS_SESSION_BUS_ADDRESS: `unix:path=${world.dir}/no-bus`,
      });
      assert.equal(noStore.code, 1);
      // auto on Linux: the selector's one line names every store it tried (issue 3)
      assert.match(
        line(noStore.stdout, "store"),
        /^✗ store: (No token store is available \(Secret Service: )?No Secret Service is running.*fix:/,
      );

      // --json carries the same checks
      const json = JSON.parse(
        (await world.run(["doctor", "--json"], { ANTHROPIC_AUTH_TOKEN: "x" })).stdout,
      );
      assert.equal(json.version, 1);
      assert.equal(json.ok, false);
      assert.ok(
        json.checks.some((c: { check: string; ok: boolean }) =>
          c.check === "environment ANTHROPIC_AUTH_TOKEN" && !c.ok
        ),
      );

      // a broken config is reported with its line, and left alone
      const path = `${world.configDir}/config.json`;
      await Deno.writeTextFile(path, "{\n  oops\n}\n");
      const broken = await world.run(["doctor"]);
      assert.equal(broken.code, 1);
      assert.match(
        line(broken.stdout, "config"),
        /^✗ config: .*config\.json:2: invalid JSON.* — fix: correct the JSON syntax on line 2 of .*config\.json/,
      );
      assert.equal(await Deno.readTextFile(path), "{\n  oops\n}\n");
    } finally {
      await world.close();
    }
  },
);
