/**
 * The real Claude Code (npm `@anthropic-ai/claude-code`, pinned in fixtures/claude_code.ts)
 * with agent-runner-auth as its `apiKeyHelper` (issue 10): `claude -p` against a local mock of
 * the Messages API (fixtures/messages_api.ts), the local Cognito-compatible server and a
 * private Secret Service. The helper is on PATH as `agent-runner-auth`, a shell wrapper that
 * runs the CLI from source with the binary's permission set (so Claude runs `/bin/sh -c
 * "agent-runner-auth token"` → the wrapper's shell → deno); the settings are written by our own
 * `setup claude --base-url <mock>`. Claude's environment: a temporary HOME, no
 * `ANTHROPIC_API_KEY`/`ANTHROPIC_AUTH_TOKEN`/`CI`, auto-updater and non-essential traffic off.
 *
 * Claude retries authentication failures for minutes: every run has a kill timer, and a run
 * whose outcome is known is killed by its PID at once.
 */
import assert from "node:assert/strict";
import { cliArgv, secretServiceTest, World } from "./harness.ts";
import { directSignIn, plant } from "./fixtures/fault_kit.ts";
import { type MessagesApi, startMessagesApi } from "./fixtures/messages_api.ts";
import {
  CLAUDE_CODE_VERSION,
  claudeCodeRequired,
  ensureClaudeCode,
} from "./fixtures/claude_code.ts";

const claude = await ensureClaudeCode();
if (!claude.ok) {
  if (claudeCodeRequired()) {
    Deno.test(`claude code ${CLAUDE_CODE_VERSION}: installed`, () => {
      throw new Error(claude.why);
    });
  } else {
    console.error(`claude_code_test.ts: skipped: ${claude.why}`);
    Deno.test({
      name: `claude code ${CLAUDE_CODE_VERSION}: skipped: ${claude.why}`,
      ignore: true,
      fn() {},
    });
  }
}

/** A test that runs the real Claude Code; skipped (reason printed above) where it is missing. */
function claudeTest(name: string, fn: (bin: string) => Promise<void>): void {
  if (!claude.ok) return;
  secretServiceTest(`claude code ${CLAUDE_CODE_VERSION}: ${name}`, () => fn(claude.bin));
}

const q = (s: string) => `'${s.replaceAll("'", `'"'"'`)}'`;

/** A world with the mock API, the helper on PATH and settings written by `setup claude`. */
async function claudeWorld(
  options: { rotation?: boolean } = {},
): Promise<{ world: World; api: MessagesApi; env: Record<string, string> }> {
  const world = await World.create({ server: { rotation: options.rotation ?? false } });
  const api = startMessagesApi();
  const bin = `${world.dir}/bin`;
  await Deno.mkdir(bin);
  // No `exec`: the wrapper's shell stays between Claude's `sh -c` and deno, like a user's
  // wrapper script would.
  await Deno.writeTextFile(
    `${bin}/agent-runner-auth`,
    `#!/bin/sh\n${[Deno.execPath(), ...cliArgv()].map(q).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );
  const setup = await world.run(["setup", "claude", "--base-url", api.url]);
  assert.equal(setup.code, 0, setup.stderr);
  const env = world.env({
    PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    DISABLE_AUTOUPDATER: "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    TERM: "xterm-256color",
  });
  return { world, api, env };
}

async function close(world: World, api: MessagesApi): Promise<void> {
  await api.close();
  await world.close();
}

async function signIn(world: World, leftMs = 3_600_000): Promise<string> {
  const t = await directSignIn(world);
  await plant(world, { access: { token: t.access, leftMs }, refresh: t.refresh });
  world.server.resetCounters();
  return t.access;
}

interface ClaudeRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `claude -p "Say OK"`, stdout and stderr piped, killed by PID after `timeoutMs`. */
async function claudeP(
  bin: string,
  world: World,
  env: Record<string, string>,
  timeoutMs = 90_000,
): Promise<ClaudeRun> {
  const child = new Deno.Command(bin, {
    args: ["-p", "Say OK", "--max-turns", "1"],
    cwd: world.dir,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }, timeoutMs);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

function assertOk(r: ClaudeRun): void {
  assert.equal(r.code, 0, `claude exited ${r.code}: ${r.stderr}${r.stdout}`);
  assert.match(r.stdout, /OK/);
}

const grants = (world: World) => world.server.counters.tokenByGrant.refresh_token;

claudeTest("the printed token reaches the API byte for byte, in both headers", async (bin) => {
  const { world, api, env } = await claudeWorld();
  try {
    const token = await signIn(world);
    assertOk(await claudeP(bin, world, env));
    const posts = api.messagePosts();
    assert.ok(posts.length >= 1);
    for (const p of posts) {
      assert.equal(p.apiKey, token);
      assert.equal(p.authorization, `Bearer ${token}`);
    }
    assert.equal(grants(world), 0);
  } finally {
    await close(world, api);
  }
});

claudeTest("expired access token: one refresh grant, the new token at the API", async (bin) => {
  const { world, api, env } = await claudeWorld();
  try {
    const old = await signIn(world, -60_000);
    assertOk(await claudeP(bin, world, env));
    assert.equal(grants(world), 1);
    const fresh = world.server.issued.access.at(-1)!;
    assert.notEqual(fresh, old);
    assert.deepEqual([...new Set(api.bearerTokens())], [fresh]);
  } finally {
    await close(world, api);
  }
});

claudeTest("4 sessions at once with a valid token: 0 grants", async (bin) => {
  const { world, api, env } = await claudeWorld();
  try {
    const token = await signIn(world);
    const runs = await Promise.all([1, 2, 3, 4].map(() => claudeP(bin, world, env)));
    runs.forEach(assertOk);
    assert.equal(grants(world), 0);
    assert.deepEqual([...new Set(api.bearerTokens())], [token]);
    assert.equal(api.messagePosts().length, 4);
  } finally {
    await close(world, api);
  }
});

claudeTest(
  "4 sessions at once after expiry, rotation on: exactly 1 refresh grant, one token at the API",
  async (bin) => {
    const { world, api, env } = await claudeWorld({ rotation: true });
    try {
      await signIn(world, -60_000);
      const runs = await Promise.all([1, 2, 3, 4].map(() => claudeP(bin, world, env)));
      runs.forEach(assertOk);
      assert.equal(grants(world), 1);
      assert.deepEqual([...new Set(api.bearerTokens())], [world.server.issued.access.at(-1)!]);
    } finally {
      await close(world, api);
    }
  },
);

claudeTest(
  "the API rejects the current token: Claude's retry succeeds with a new token",
  async (bin) => {
    const { world, api, env } = await claudeWorld();
    try {
      const rejected = await signIn(world);
      api.rejected.add(rejected);
      assertOk(await claudeP(bin, world, env));
      assert.ok(grants(world) >= 1 && grants(world) <= 2, `grants: ${grants(world)}`);
      const posts = api.messagePosts();
      assert.equal(posts[0].apiKey, rejected);
      assert.equal(posts[0].status, 401);
      const last = posts.at(-1)!;
      assert.equal(last.status, 200);
      assert.notEqual(last.apiKey, rejected);
      assert.equal(posts.filter((p) => p.apiKey === rejected).length, 1, "served once, not again");
    } finally {
      await close(world, api);
    }
  },
);

claudeTest(
  "the API rejects every token: one refresh, then our line, and Claude stops at once",
  async (bin) => {
    const { world, api, env } = await claudeWorld();
    try {
      await signIn(world);
      api.rejectAll = true;
      const r = await claudeP(bin, world, env);
      assert.equal(r.code, 1);
      assert.match(
        r.stdout + r.stderr,
        /The API rejected the token again.*agent-runner-auth login/,
      );
      assert.equal(grants(world), 1, "one recovery, no loop");
      const tokens = api.messagePosts().map((p) => p.apiKey).filter((k) => k);
      assert.equal(new Set(tokens).size, 2, "the first token and its one replacement");
    } finally {
      await close(world, api);
    }
  },
);

claudeTest(
  "signed out, no browser, under a pty: the reason and `agent-runner-auth login` on the terminal",
  async (bin) => {
    const { world, api, env } = await claudeWorld();
    try {
      const typescript = `${world.dir}/pty.log`;
      const pidFile = `${world.dir}/claude.pid`;
      // The shell writes Claude's PID (exec keeps it) so the run can be stopped by that PID.
      const inner = `echo $$ > ${q(pidFile)}; exec ${q(bin)} -p 'Say OK' --max-turns 1`;
      const script = new Deno.Command("script", {
        args: ["-qec", inner, typescript],
        cwd: world.dir,
        env: { ...env, BROWSER: "", DISPLAY: "", WAYLAND_DISPLAY: "" },
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const wanted =
        /cannot give Claude Code a token: Not signed in.*In another terminal, run: agent-runner-auth login/;
      let seen = "";
      const deadline = 120; // polls of 0.5 s; the outcome usually shows within seconds
      let exited = false;
      script.status.then(() => (exited = true));
      for (let i = 0; i < deadline && !wanted.test(seen) && !exited; i++) {
        await new Promise((r) => setTimeout(r, 500));
        seen = (await Deno.readTextFile(typescript).catch(() => "")).replace(/\r/g, "");
      }
      const pid = Number((await Deno.readTextFile(pidFile).catch(() => "")).trim());
      if (pid > 0) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // already exited
        }
      }
      try {
        script.kill("SIGKILL");
      } catch {
        // already exited
      }
      await script.status;
      seen = (await Deno.readTextFile(typescript).catch(() => "")).replace(/\r/g, "");
      assert.match(seen, wanted, `terminal output:\n${seen.slice(-2000)}`);
      assert.equal(grants(world), 0);
    } finally {
      await close(world, api);
    }
  },
);
