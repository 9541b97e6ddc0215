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

Deno.test("cli: --help on every verb, with examples, on stdout (so `--help | less` works)", async (t) => {
  for (const verb of ["token", "login", "status", "refresh", "logout", "doctor", "setup"]) {
    await t.step(verb, async () => {
      // every form for one verb; the usual one for the others (each run is a subprocess)
      const forms = verb === "status"
        ? [[verb, "--help"], ["help", verb], ["--help", verb], [verb, "-h"]]
        : [[verb, "--help"]];
      for (const args of forms) {
        const r = await cli(args);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, "", args.join(" "));
        assert.match(r.stdout, new RegExp(`Usage: agent-runner-auth ${verb}`));
        assert.match(r.stdout, /Example/);
      }
    });
  }
  for (const args of [["--help"], ["help"], ["-h"]]) {
    const top = await cli(args);
    assert.equal(top.code, 0);
    assert.equal(top.stderr, "");
    assert.match(top.stdout, /Exit codes:/);
  }
  // No verb at all is a usage error: the help is then the error text, on stderr.
  const none = await cli([]);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, "");
  assert.match(none.stderr, /Usage: agent-runner-auth/);
  // -V before or after a verb
  for (const args of [["-V"], ["status", "--version"]]) {
    const r = await cli(args);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `agent-runner-auth ${denoJson.version}\n`);
  }
});

Deno.test("cli: usage errors exit 2 with one line naming the flag, in our words", async () => {
  const cases: [string[], string][] = [
    [
      [
        "login",
        "--tenant-url",
        "http://acme.example.test",
        "--auth-domain",
        "auth.example.com",
        "--client-id",
        "c",
      ],
      "login: --tenant-url must use https (http only for loopback)",
    ],
    [
      ["login"],
      "login: missing --tenant-url URL, --auth-domain HOST and --client-id ID (/nonexistent-cfg/config.json does not exist yet)",
    ],
    [["login", "--tenant-url"], "login: --tenant-url needs a value: --tenant-url URL"],
    [
      ["status", "--json=yes"],
      "status: --json is a switch and takes no value (write --json alone)",
    ],
    [["status", "--profile"], "status: --profile needs a value: --profile NAME"],
    [["--bogus", "status"], "status: unknown flag --bogus"],
    [["-x"], "unknown flag -x"],
  ];
  for (const [args, line] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, `agent-runner-auth: ${line}\n`, args.join(" "));
  }
});

Deno.test("cli: --profile and -v are accepted before or after the verb", async () => {
  const before = await cli(["--profile", "work", "status"]);
  const after = await cli(["status", "--profile", "work"]);
  const eq = await cli(["--profile=work", "-v", "status"]);
  for (const r of [before, after, eq]) {
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^agent-runner-auth: Not configured: /);
  }
  assert.equal(before.stderr, after.stderr);
  // the token fast path takes the flag on either side too
  const token = await cli(["--profile", "work", "token"]);
  assert.equal(token.code, 3);
  assert.match(token.stderr, /login --profile work --tenant-url/);
});

Deno.test("cli: an expected error prints one line, also with -v (no stack); exit 3", async () => {
  for (
    const args of [["token", "-v"], ["-v", "token"], ["status", "-v"], ["refresh", "--verbose"]]
  ) {
    const r = await cli(args);
    assert.equal(r.code, 3, args.join(" "));
    const lines = r.stderr.trimEnd().split("\n").filter((l) => !l.includes(": debug: "));
    assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack frames");
  }
  const quiet = await cli(["token"], { AGENT_RUNNER_LOG: "debug" });
  assert.doesNotMatch(quiet.stderr, /^\s+at /m);
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
  assert.equal(extra.stderr, 'agent-runner-auth: status: unexpected argument "now"\n');
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
