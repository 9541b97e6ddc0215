/**
 * `login --no-browser` (SSH): the URL is printed, nothing is opened, and the user pastes the
 * redirect URL from the browser's address bar into the terminal. Driven through a real
 * pseudo-terminal (util-linux `script` forwards our writes to the CLI's stdin, a TTY).
 *
 * Also the headless cases of issue 13 item 5: with a terminal but no browser, `login` switches
 * to paste mode by itself and its loopback listener still completes a forwarded redirect; with
 * neither, or `--no-browser` without a terminal, it fails at once with one line.
 */
import assert from "node:assert/strict";
import { cliArgv, secretServiceTest, World } from "./harness.ts";
import { followAuthorize } from "./browser.ts";

async function waitForFile(
  path: string,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const text = await Deno.readTextFile(path).catch(() => "");
    const m = pattern.exec(text);
    if (m) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${pattern} in ${path}`);
}

/** A `login` running on a pseudo-terminal: its stderr file, the printed URL, and its stdin. */
interface PasteSession {
  url: string;
  /** Types one line (a newline is added). */
  type(line: string): Promise<void>;
  /** Waits for a pattern in stderr. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Waits for the exit status; returns it with the whole stderr. */
  finish(): Promise<{ rc: string; stderr: string }>;
  close(): Promise<void>;
}

async function startPasteLogin(
  world: World,
  args: string[],
  env: Record<string, string> = {},
): Promise<PasteSession> {
  const err = `${world.dir}/paste-${crypto.randomUUID().slice(0, 8)}.err`;
  const argv = [Deno.execPath(), ...cliArgv(), ...args].map((s) => `'${s}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qec", `${argv} 2>'${err}'; echo "rc=$?" >>'${err}'`, "/dev/null"],
    cwd: world.dir,
    env: world.env({ TEST_BROWSER_LOG: world.browserLog, ...env }),
    clearEnv: true,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const writer = child.stdin.getWriter();
  const waitFor = (pattern: RegExp, timeoutMs = 15_000) => waitForFile(err, pattern, timeoutMs);
  const close = async () => {
    clearTimeout(timer);
    await writer.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  };
  try {
    const [, url] = await waitFor(/(http:\/\/127\.0\.0\.1:\d+\/oauth2\/authorize\?\S+)/);
    return {
      url,
      type: (line) => writer.write(new TextEncoder().encode(line + "\n")),
      waitFor,
      finish: async () => {
        const [, rc] = await waitFor(/rc=(\d+)/);
        return { rc, stderr: await Deno.readTextFile(err) };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** What the user's browser ends on after signing in: the redirect URL they copy. */
async function signInElsewhere(url: string): Promise<string> {
  const res = await fetch(url, { redirect: "manual" });
  await res.body?.cancel();
  const landed = res.headers.get("location")!;
  assert.match(landed, /\/callback\?code=/);
  return landed;
}

secretServiceTest(
  "e2e: login --no-browser prints the URL, opens nothing, accepts the pasted redirect URL",
  async () => {
    const world = await World.create();
    try {
      const s = await startPasteLogin(world, ["login", "--no-browser"], {
        BROWSER: `${world.dir}/must-not-run`,
      });
      try {
        await s.waitFor(/paste the full address/);
        await s.waitFor(/Waiting up to 20 s for the sign-in; press Ctrl-C to cancel\./);
        const landed = await signInElsewhere(s.url);
        await s.type("not-a-url?state=forged&code=x");
        await s.waitFor(/not this sign-in's redirect address: it belongs to another sign-in/);
        await s.type(landed);
        const { rc, stderr } = await s.finish();
        assert.equal(rc, "0", stderr);
        assert.match(stderr, /Signed in as test\.user@example\.com/);
        assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
        assert.equal(await world.browserLaunches(), 0, "--no-browser opens nothing");
        assert.ok(await world.secretTool("agent-runner-refresh-token"));
      } finally {
        await s.close();
      }
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "issue 11 finding 4: a malformed or foreign pasted redirect URL gets a reason and a new " +
    "prompt, never a crash, and no code or state is echoed",
  async () => {
    const world = await World.create({ env: { AGENT_RUNNER_LOG: "debug" } });
    try {
      const s = await startPasteLogin(world, ["login", "--no-browser"]);
      try {
        await s.waitFor(/paste the full address/);
        const landed = new URL(await signInElsewhere(s.url));
        const code = landed.searchParams.get("code")!;
        const state = landed.searchParams.get("state")!;
        // The crash of the review: `new URL` of this threw, and stderr quoted the code.
        await s.type("http://[bad?code=SECRETCODE123&state=SECRETSTATE1");
        await s.waitFor(/it is not a valid URL\. Paste it again \(4 tries left\):/);
        // A redirect of another sign-in: a real-looking code, another state.
        await s.type(`${landed.origin}${landed.pathname}?code=SECRETCODE456&state=SECRETSTATE2`);
        await s.waitFor(/it belongs to another sign-in \(its state differs\)\. Paste it again \(3/);
        await s.type(`code=SECRETCODE789 with spaces`);
        await s.waitFor(
          /it has no state= \(paste the whole address, or just the code\)\. Paste it again \(2 tries/,
        );
        await s.type(landed.href);
        const { rc, stderr } = await s.finish();
        assert.equal(rc, "0", stderr);
        assert.match(stderr, /Signed in as /);
        assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
        const log = await Deno.readTextFile(`${world.configDir}/agent-runner-auth.log`)
          .catch(() => "");
        for (const secret of ["SECRETCODE", "SECRETSTATE", code]) {
          assert.ok(!stderr.includes(secret), `${secret} echoed: ${stderr}`);
          assert.ok(!log.includes(secret), `${secret} logged`);
        }
        // The real state is in the printed fallback URL (for a human to copy), nowhere else.
        assert.equal(stderr.split(state).length - 1, 1, "state printed once, in the URL");
      } finally {
        await s.close();
      }
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "issue 11 finding 4: pasting wrong addresses is bounded: after 5 the login fails with one " +
    "line (exit 8), echoing none of them",
  async () => {
    const world = await World.create();
    try {
      const s = await startPasteLogin(world, ["login", "--no-browser"]);
      try {
        await s.waitFor(/paste the full address/);
        for (let i = 0; i < 5; i++) {
          await s.type(`http://x/callback?code=SECRETCODE${i}&state=s${i}`);
        }
        const { rc, stderr } = await s.finish();
        assert.equal(rc, "8", stderr);
        const last = stderr.trimEnd().split("\n").at(-2)!; // before "rc=8"
        assert.equal(
          last,
          "agent-runner-auth: Gave up after 5 pastes that were not this sign-in's redirect address (the last: it belongs to another sign-in (its state differs)); run `agent-runner-auth login --no-browser` to try again",
        );
        assert.ok(!stderr.includes("SECRETCODE"), stderr);
        assert.equal(world.server.counters.tokenByGrant.authorization_code, 0);
        assert.equal(await world.secretTool("agent-runner-refresh-token"), null);
      } finally {
        await s.close();
      }
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "issue 13 item 5: login with a terminal but no browser (SSH) switches to paste mode by " +
    "itself, says so, and a forwarded port still completes it",
  async () => {
    const world = await World.create();
    try {
      // No $BROWSER, $DISPLAY or $WAYLAND_DISPLAY in the world's env: an SSH session.
      const s = await startPasteLogin(world, ["login"]);
      try {
        await s.waitFor(/No browser can be opened here .*, so switching to paste mode\./);
        const [, forward] = await s.waitFor(/ssh -L (\S+)\)/);
        const { host, port } = new URL(world.redirectUri);
        assert.equal(forward, `${port}:${host}`);
        await s.waitFor(/Waiting up to 20 s for the sign-in; press Ctrl-C to cancel\./);
        // The browser on the user's machine reaches the listener through the forwarded port.
        const followed = await followAuthorize(s.url, { timeoutMs: 10_000 });
        assert.equal(followed.callbackStatus, 200);
        const { rc, stderr } = await s.finish();
        assert.equal(rc, "0", stderr);
        assert.match(stderr, /Signed in as test\.user@example\.com/);
        assert.equal(await world.browserLaunches(), 0);
        assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
      } finally {
        await s.close();
      }
    } finally {
      await world.close();
    }
  },
);

/** Runs the CLI in a session of its own (`setsid`): no controlling terminal, stdin empty. */
async function runDetached(world: World, args: string[], extra: Record<string, string> = {}) {
  const out = await new Deno.Command("setsid", {
    args: ["-w", Deno.execPath(), ...cliArgv(), ...args],
    cwd: world.dir,
    env: world.env(extra),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

secretServiceTest(
  "issue 13 item 5: login with neither a terminal nor a browser fails at once with one line " +
    "pointing at --no-browser; so does --no-browser without a terminal",
  async () => {
    const world = await World.create();
    try {
      const neither = await runDetached(world, ["login"]);
      assert.equal(neither.code, 1, neither.stderr);
      assert.equal(
        neither.stderr,
        "agent-runner-auth: Cannot sign in here: no terminal (stdin is not a terminal and /dev/tty cannot be opened) and no browser can be opened ($BROWSER, $DISPLAY and $WAYLAND_DISPLAY are unset); run `agent-runner-auth login --no-browser` in a terminal (over SSH too) and paste the redirect address\n",
      );
      const noTerminal = await runDetached(world, ["login", "--no-browser"]);
      assert.equal(noTerminal.code, 1, noTerminal.stderr);
      assert.equal(
        noTerminal.stderr,
        "agent-runner-auth: login --no-browser needs a terminal to paste the redirect address into, and there is no terminal (stdin is not a terminal and /dev/tty cannot be opened); run it in a terminal\n",
      );
      // Nothing was started: no listener, no authorize request, nothing stored or written.
      assert.equal(world.server.counters.authorize, 0);
      assert.equal(await world.secretTool("agent-runner-access-token"), null);
    } finally {
      await world.close();
    }
  },
);
