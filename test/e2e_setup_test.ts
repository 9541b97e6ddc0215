/**
 * `setup claude` end to end: the real CLI as a subprocess (run from source with `deno task cli`'s
 * permissions), a throwaway HOME and config directory, and settings files written byte for byte.
 * Issue 4's "done when": a settings file with unrelated keys keeps them byte-for-byte and
 * `--undo` returns the original.
 *
 * Fixtures under `test/fixtures/claude/` end in `.txt` so `deno fmt` leaves their layout alone:
 * the layout is what is under test.
 */
import assert from "node:assert/strict";
import { cliArgv, ROOT, type RunResult } from "./harness.ts";

const FIXTURES = `${ROOT}/test/fixtures/claude`;
const TENANT = "https://acme.proxy.example.com";

/** A private HOME with a config for TENANT (and a `work` profile). */
async function makeHome() {
  const dir = await Deno.makeTempDir({ prefix: "ara-setup-" });
  const configDir = `${dir}/config`;
  await Deno.mkdir(configDir, { mode: 0o700 });
  await Deno.writeTextFile(
    `${configDir}/config.json`,
    JSON.stringify(
      {
        tenant_url: TENANT + "/",
        auth_domain: "auth.example.com",
        client_id: "test-client",
        scope: "openid email",
        profiles: {
          work: {
            tenant_url: "https://work.proxy.example.com",
            auth_domain: "auth.work.example.com",
            client_id: "work-client",
          },
        },
      },
      null,
      2,
    ),
  );
  const settings = `${dir}/.claude/settings.json`;
  return {
    dir,
    configDir,
    settings,
    /** Runs the CLI with only PATH and the Deno cache inherited. */
    async run(
      args: string[],
      opts: { env?: Record<string, string>; cwd?: string } = {},
    ): Promise<RunResult> {
      const started = performance.now();
      const out = await new Deno.Command(Deno.execPath(), {
        args: [...cliArgv(), ...args],
        cwd: opts.cwd ?? dir,
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
          NO_COLOR: "1",
          HOME: dir,
          AGENT_RUNNER_CONFIG_DIR: configDir,
          ...opts.env,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
        ms: performance.now() - started,
      };
    },
    async backups(inDir = `${dir}/.claude`): Promise<string[]> {
      const names: string[] = [];
      for await (const e of Deno.readDir(inDir)) if (e.name.includes(".bak-")) names.push(e.name);
      return names.sort();
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function ok(r: RunResult): void {
  assert.equal(r.code, 0, `exit ${r.code}; stderr: ${r.stderr}`);
  assert.equal(r.stdout, "", "nothing on stdout");
}

Deno.test("e2e setup claude: unrelated keys kept byte for byte, --undo returns the original", async () => {
  await using home = await makeHome();
  const original = await Deno.readFile(`${FIXTURES}/user_settings.json.txt`);
  const expected = await Deno.readTextFile(`${FIXTURES}/user_settings.expected.json.txt`);
  await Deno.mkdir(`${home.dir}/.claude`);
  await Deno.writeFile(home.settings, original, { mode: 0o644 });
  await Deno.chmod(home.settings, 0o644);

  const r = await home.run(["setup", "claude"]);
  ok(r);
  assert.equal(await Deno.readTextFile(home.settings), expected);
  assert.match(r.stderr, /Updated ~\/\.claude\/settings\.json \(previous version saved as/);
  assert.match(r.stderr, /^ {2}\+ apiKeyHelper: "agent-runner-auth token"$/m);
  assert.match(
    r.stderr,
    /^ {2}~ env\.ANTHROPIC_BASE_URL: "https:\/\/api\.anthropic\.com" -> "https:\/\/acme\.proxy\.example\.com\/anthropic\/v1"$/m,
  );
  assert.match(r.stderr, /^ {2}\+ env\.CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3300000"$/m);
  assert.equal((await Deno.stat(home.settings)).mode! & 0o777, 0o644, "mode kept");
  const [backup] = await home.backups();
  assert.match(backup, /^settings\.json\.bak-\d{8}T\d{6}Z$/);
  assert.deepEqual(await Deno.readFile(`${home.dir}/.claude/${backup}`), original);

  const again = await home.run(["setup", "claude"]);
  ok(again);
  assert.match(again.stderr, /nothing to change/);
  assert.equal(await Deno.readTextFile(home.settings), expected);
  assert.equal((await home.backups()).length, 1, "no write, no second backup");

  const undo = await home.run(["setup", "claude", "--undo"]);
  ok(undo);
  assert.match(undo.stderr, /Restored ~\/\.claude\/settings\.json/);
  assert.match(undo.stderr, /^ {2}- apiKeyHelper: "agent-runner-auth token"$/m);
  assert.deepEqual(await Deno.readFile(home.settings), original);

  const twice = await home.run(["setup", "claude", "--undo"]);
  ok(twice);
  assert.match(twice.stderr, /Nothing to undo/);
});

Deno.test("e2e setup claude: a new file, then undo after the user edited one of our keys", async () => {
  await using home = await makeHome();
  const r = await home.run(["setup", "claude"]);
  ok(r);
  assert.match(r.stderr, /Created ~\/\.claude\/settings\.json/);
  assert.equal((await Deno.stat(home.settings)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${home.dir}/.claude`)).mode! & 0o777, 0o700);
  const written = await Deno.readTextFile(home.settings);
  assert.deepEqual(JSON.parse(written), {
    apiKeyHelper: "agent-runner-auth token",
    env: {
      ANTHROPIC_BASE_URL: `${TENANT}/anthropic/v1`,
      CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3300000",
    },
  });

  await Deno.writeTextFile(home.settings, written.replace('"3300000"', '"1800000"'));
  const undo = await home.run(["setup", "claude", "--undo"]);
  ok(undo);
  assert.match(
    undo.stderr,
    /warning: env\.CLAUDE_CODE_API_KEY_HELPER_TTL_MS was changed since setup/,
  );
  assert.deepEqual(JSON.parse(await Deno.readTextFile(home.settings)), {
    env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "1800000" },
  });
});

Deno.test("e2e setup claude: a file with comments is refused with its line and left alone", async () => {
  await using home = await makeHome();
  const original = await Deno.readFile(`${FIXTURES}/commented_settings.json.txt`);
  await Deno.mkdir(`${home.dir}/.claude`);
  await Deno.writeFile(home.settings, original);
  const r = await home.run(["setup", "claude"]);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, "one line");
  assert.match(r.stderr, /\.claude\/settings\.json:3: comments are not allowed/);
  assert.deepEqual(await Deno.readFile(home.settings), original);
  assert.deepEqual(await home.backups(), []);
});

Deno.test("e2e setup claude --project --profile work: the project file and the profile's tenant", async () => {
  await using home = await makeHome();
  const project = `${home.dir}/repo`;
  await Deno.mkdir(project);
  const r = await home.run(["setup", "claude", "--project", "--profile", "work"], { cwd: project });
  ok(r);
  const written = JSON.parse(await Deno.readTextFile(`${project}/.claude/settings.json`));
  assert.equal(written.apiKeyHelper, "agent-runner-auth token --profile work");
  assert.equal(written.env.ANTHROPIC_BASE_URL, "https://work.proxy.example.com/anthropic/v1");
  assert.match(r.stderr, /trust this folder/);
  await assert.rejects(Deno.stat(home.settings), Deno.errors.NotFound, "user file untouched");

  const undo = await home.run(["setup", "claude", "--project", "--undo"], { cwd: project });
  ok(undo);
  await assert.rejects(Deno.stat(`${project}/.claude/settings.json`), Deno.errors.NotFound);
});

Deno.test("e2e setup: usage errors, missing config, and a stray API key warned about", async () => {
  await using home = await makeHome();
  const none = await home.run(["setup"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /setup claude/);
  const wrong = await home.run(["setup", "cursor"]);
  assert.equal(wrong.code, 2);
  const help = await home.run(["setup", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Examples:/);

  const secret = "sk-ant-api03-STRAYSTRAYSTRAYSTRAYSTRAY";
  const warned = await home.run(["setup", "claude"], { env: { ANTHROPIC_API_KEY: secret } });
  ok(warned);
  assert.match(warned.stderr, /warning: ANTHROPIC_API_KEY is set in this shell/);
  assert.ok(!warned.stderr.includes("STRAY"), "the key is never printed");

  await Deno.remove(`${home.configDir}/config.json`);
  const unconfigured = await home.run(["setup", "claude", "--profile", "default"]);
  assert.equal(unconfigured.code, 3);
  assert.match(unconfigured.stderr, /Not configured/);
});
