/** Help, version, usage errors and the debug log: the CLI's surface, as subprocesses. */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { cliArgv, secretServiceTest, World } from "./harness.ts";

async function cli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...cliArgv(), ...args],
    env: {
      NO_COLOR: "1",
      HOME: "/nonexistent-home",
      AGENT_RUNNER_CONFIG_DIR: "/nonexistent-cfg",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("cli: --version prints the version from deno.json on stdout", async () => {
  const r = await cli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `agent-runner-auth ${denoJson.version}\n`);
});

Deno.test("cli: --help on every verb, with examples, on stderr", async (t) => {
  for (const verb of ["token", "login", "status", "refresh", "logout", "doctor", "setup"]) {
    await t.step(verb, async () => {
      const r = await cli([verb, "--help"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, new RegExp(`Usage: agent-runner-auth ${verb}`));
      assert.match(r.stderr, /Example/);
    });
  }
  const top = await cli(["--help"]);
  assert.equal(top.code, 0);
  assert.match(top.stderr, /Exit codes:/);
});

Deno.test("cli: unknown verbs and flags get the closest match and exit 2", async () => {
  const verb = await cli(["statsu"]);
  assert.equal(verb.code, 2);
  assert.equal(verb.stdout, "");
  assert.equal(
    verb.stderr,
    'agent-runner-auth: Unknown verb "statsu"; did you mean "status"? (see agent-runner-auth --help)\n',
  );
  const flag = await cli(["logout", "--al"]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /logout: unknown flag --al; did you mean --all\?/);
  const extra = await cli(["status", "now"]);
  assert.equal(extra.code, 2);
  const none = await cli([]);
  assert.equal(none.code, 2);
});

secretServiceTest(
  "cli: -v / AGENT_RUNNER_LOG=debug traces to stderr with no token in it",
  async () => {
    const world = await World.create({ server: { rotation: true } });
    try {
      const login = await world.runInTerminal(["token"], { AGENT_RUNNER_LOG: "debug" });
      assert.equal(login.code, 0, login.stderr);
      const r = await world.run(["refresh", "--force", "-v"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /debug: refresh grant at http:\/\/127\.0\.0\.1:\d+/);
      assert.match(r.stderr, /debug: token endpoint: HTTP 200 in \d+ ms/);
      assert.match(r.stderr, /new refresh token: yes \(rotation\)/);
      for (const t of [...world.server.allIssuedTokens(), ...world.server.issued.codes]) {
        assert.ok(
          !r.stderr.includes(t) && !login.stderr.includes(t),
          "a debug trace never holds a token or code",
        );
      }
    } finally {
      await world.close();
    }
  },
);
