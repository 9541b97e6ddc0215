/**
 * Fault suite, part 6: secrets stay where they belong (SPEC.md §7). One world goes through a
 * whole life — browser sign-in, cached calls, refreshes with rotation, failures of every kind
 * with the debug trace on, a second sign-in after the session was revoked, `status`, `refresh
 * --force`, `logout` — while a sampler records the command line of every process on the machine.
 * Then every access, ID and refresh token and every authorization code the server issued is
 * looked for in: the argv of every process seen, the browser's own argv (recorded by a fake
 * `$BROWSER`), every stderr, every stdout other than `token`'s, the log file, the login-state
 * file and the config. (Other stores' argv, e.g. `pass`, are covered with those stores.)
 */
import assert from "node:assert/strict";
import { ROOT, type RunResult, World } from "./harness.ts";
import { secretServiceTestOptions } from "./fixtures/secret_service.ts";
import {
  assertNoSecrets,
  assertToken,
  directSignIn,
  plant,
  writtenFiles,
} from "./fixtures/fault_kit.ts";

/** Records the cmdline of every process alive at each tick (deduplicated). */
class ArgvSampler {
  readonly seen = new Set<string>();
  #timer: ReturnType<typeof setInterval>;

  constructor(intervalMs: number) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
        if (argv) this.seen.add(argv.replaceAll("\0", " "));
      } catch {
        // exited meanwhile
      }
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

Deno.test({
  name: "fault: no secret in any process's argv, the browser's argv, stderr, logs or files",
  ignore: Deno.build.os !== "linux" || secretServiceTestOptions().ignore,
  fn: async () => {
    const world = await World.create({
      server: { rotation: true, rotationGracePeriodSeconds: 60 },
      // The debug trace (redacted) is on for every run: it must not leak either.
      env: { AGENT_RUNNER_LOG: "debug", AGENT_RUNNER_HTTP_TIMEOUT_MS: "400" },
    });
    const sampler = new ArgvSampler(15);
    const argvLog = `${world.dir}/browser-argv.log`;
    const browser = { BROWSER: `${ROOT}/test/fixtures/argv_browser`, ARGV_LOG: argvLog };
    const tokenRuns: RunResult[] = [];
    const otherRuns: RunResult[] = [];
    try {
      // A browser sign-in, then cached and refreshed calls.
      tokenRuns.push(await world.runInTerminal(["token"], browser));
      const first = assertToken(tokenRuns[0], world);
      tokenRuns.push(await world.run(["token"]));
      tokenRuns.push(await world.run(["token", "-v"]));
      for (let i = 0; i < 2; i++) {
        await plant(world, { access: { token: first, leftMs: -60_000 } });
        tokenRuns.push(await world.run(["token"]));
        assertToken(tokenRuns.at(-1)!, world);
      }

      // Failures of every kind, each with a stored refresh token in play.
      const failures: [string, () => void | Promise<void>][] = [
        ["500", () => world.server.setFault("token", { status: 500 })],
        ["malformed", () => world.server.setFault("token", { malformedJson: true })],
        ["no access_token", () => world.server.setFault("token", { omitAccessToken: true })],
        ["invalid_client", () => world.writeConfig({ client_id: "unknown-client" })],
        ["invalid_grant", () => world.server.setFault("token", { forceError: "invalid_grant" })],
      ];
      for (const [name, inject] of failures) {
        const signIn = await directSignIn(world);
        await plant(world, {
          access: { token: signIn.access, leftMs: -60_000 },
          refresh: signIn.refresh,
        });
        await inject();
        const r = await world.run(["token"]);
        world.server.clearFaults();
        await world.writeConfig();
        assert.notEqual(r.code, 0, `${name} fails`);
        tokenRuns.push(r);
      }

      // The session is revoked: a second browser sign-in, with tokens issued before it.
      tokenRuns.push(await world.runInTerminal(["token"], browser));
      assertToken(tokenRuns.at(-1)!, world);

      for (const args of [["status"], ["status", "--json"], ["refresh", "--force"], ["logout"]]) {
        otherRuns.push(await world.run(args));
      }
      sampler.sample();
    } finally {
      sampler.stop();
    }
    try {
      // Every stdout but a successful `token`'s, and every stderr.
      const texts = [
        ...tokenRuns.map((r) => r.stderr),
        ...tokenRuns.filter((r) => r.code !== 0).map((r) => r.stdout),
        ...otherRuns.flatMap((r) => [r.stdout, r.stderr]),
        ...(await writtenFiles(world)),
      ];
      assertNoSecrets(world, texts, "output or files");
      assertNoSecrets(world, [...sampler.seen], "a process's argv");

      // The browser got exactly one argument, the listener's start page, each time.
      const launches = (await Deno.readTextFile(argvLog)).trim().split("\n").map((l) =>
        JSON.parse(l) as string[]
      );
      assert.equal(launches.length, 2);
      const origin = new URL(world.redirectUri).origin;
      for (const argv of launches) {
        assert.equal(argv.length, 1);
        assert.ok(argv[0].startsWith(`${origin}/start/`), argv[0]);
      }
      assertNoSecrets(world, launches.flat(), "the browser's argv");

      // The sampler did see the CLI and the browser (it is not vacuous).
      const seen = [...sampler.seen];
      assert.ok(seen.some((a) => a.includes("dist/bundle/main.js token")), "saw a CLI process");
      assert.ok(seen.some((a) => a.includes(`${origin}/start/`)), "saw the browser's argv");
      // No login secret in the argv of any process of this world (the sampler also sees other
      // test runs on the machine, so only ours are judged): issue 11 finding 5.
      const ours = seen.filter((a) =>
        a.includes(ROOT) || a.includes(world.server.url) || a.includes(origin)
      );
      const leaked = ours.filter((a) => /[?&](state|nonce|code_challenge)=/.test(a));
      assert.deepEqual(leaked, [], "no state, nonce or code_challenge in an argv");
      // The debug trace did produce output to scan.
      assert.ok(tokenRuns.some((r) => /debug/.test(r.stderr)), "the debug trace ran");
    } finally {
      await world.close();
    }
  },
});
