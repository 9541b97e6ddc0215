/**
 * A failure reaches the person (SPEC.md §1.7): `token` run the way Claude Code's TUI runs it
 * (in a session with a pseudo-terminal, util-linux `script`, every standard stream redirected)
 * writes its one line to /dev/tty too, not again within 30 s; with stderr on the terminal, the
 * line shows once.
 */
import assert from "node:assert/strict";
import { cliArgv, secretServiceTest, World } from "./harness.ts";

const q = (s: string) => `'${s.replaceAll("'", `'"'"'`)}'`;

/** Runs `token` under `script`; returns what reached the terminal and the redirected stderr. */
async function underPty(
  world: World,
  redirectStderr: boolean,
  extra: Record<string, string> = {},
): Promise<{ terminal: string; stderr: string }> {
  const id = crypto.randomUUID().slice(0, 8);
  const typescript = `${world.dir}/pty-${id}`;
  const err = `${world.dir}/err-${id}`;
  const cmd = [Deno.execPath(), ...cliArgv(), "token"].map(q).join(" ") +
    ` </dev/null >/dev/null${redirectStderr ? ` 2>${q(err)}` : ""}`;
  const child = new Deno.Command("script", {
    args: ["-qec", cmd, typescript],
    cwd: world.dir,
    env: world.env({ BROWSER: "", DISPLAY: "", WAYLAND_DISPLAY: "", ...extra }),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
  return {
    terminal: await Deno.readTextFile(typescript).catch(() => ""),
    stderr: await Deno.readTextFile(err).catch(() => ""),
  };
}

secretServiceTest(
  "terminal line: signed out, no browser, under a pty -> the reason and `agent-runner-auth login` on /dev/tty",
  async () => {
    const world = await World.create();
    try {
      const r = await underPty(world, true);
      assert.match(
        r.stderr,
        /^agent-runner-auth: Not signed in, and cannot sign in here: no browser/,
      );
      assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, "stderr stays one line");
      const lines = r.terminal.split(/\r*\n/).filter((l) => l.includes("agent-runner-auth"));
      assert.equal(lines.length, 1, r.terminal);
      assert.match(
        lines[0],
        /^agent-runner-auth \(Claude Code's apiKeyHelper\) cannot give Claude Code a token: Not signed in, .*\. In another terminal, run: agent-runner-auth login$/,
      );

      // Claude tries a failing helper three times in seconds: the same line is not repeated.
      const again = await underPty(world, true);
      assert.ok(!again.terminal.includes("agent-runner-auth"), again.terminal);
      assert.match(again.stderr, /^agent-runner-auth: Not signed in/, "stderr has it every time");

      const ssh = await underPty(world, true, { SSH_CONNECTION: "10.0.0.1 50000 10.0.0.2 22" });
      assert.match(ssh.terminal, /In another terminal, run: agent-runner-auth login --no-browser/);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "terminal line: stderr already on the terminal -> the line shows once",
  async () => {
    const world = await World.create();
    try {
      const r = await underPty(world, false);
      const lines = r.terminal.split(/\r*\n/).filter((l) => l.includes("agent-runner-auth"));
      assert.equal(lines.length, 1, r.terminal);
      assert.match(lines[0], /^agent-runner-auth: Not signed in/);
    } finally {
      await world.close();
    }
  },
);
