/**
 * `login --no-browser` (SSH): the URL is printed, nothing is opened, and the user pastes the
 * redirect URL from the browser's address bar into the terminal. Driven through a real
 * pseudo-terminal (util-linux `script` forwards our writes to the CLI's stdin, a TTY).
 */
import assert from "node:assert/strict";
import { cliArgv, secretServiceTest, World } from "./harness.ts";

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

secretServiceTest(
  "e2e: login --no-browser prints the URL, opens nothing, accepts the pasted redirect URL",
  async () => {
    const world = await World.create();
    try {
      const err = `${world.dir}/paste.err`;
      const argv = [Deno.execPath(), ...cliArgv(), "login", "--no-browser"].map((s) => `'${s}'`)
        .join(" ");
      const child = new Deno.Command("script", {
        args: ["-qec", `${argv} 2>'${err}'; echo "rc=$?" >>'${err}'`, "/dev/null"],
        cwd: world.dir,
        env: world.env({
          BROWSER: `${world.dir}/must-not-run`,
          TEST_BROWSER_LOG: world.browserLog,
        }),
        clearEnv: true,
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      try {
        const [, url] = await waitForFile(
          err,
          /(http:\/\/127\.0\.0\.1:\d+\/oauth2\/authorize\?\S+)/,
          15_000,
        );
        await waitForFile(err, /paste the full URL/, 5_000);
        // The user's browser signs in and lands on a URL it cannot open: they copy it.
        const res = await fetch(url, { redirect: "manual" });
        await res.body?.cancel();
        const landed = res.headers.get("location")!;
        assert.match(landed, /\/callback\?code=/);
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode("not-a-url?state=forged&code=x\n"));
        await waitForFile(err, /not the redirect URL of this sign-in/, 5_000);
        await writer.write(new TextEncoder().encode(landed + "\n"));
        await writer.close();
        const [, rc] = await waitForFile(err, /rc=(\d+)/, 15_000);
        const stderr = await Deno.readTextFile(err);
        assert.equal(rc, "0", stderr);
        assert.match(stderr, /Signed in as /);
        assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
        assert.equal(await world.browserLaunches(), 0, "--no-browser opens nothing");
        assert.ok(await world.secretTool("agent-runner-refresh-token"));
      } finally {
        clearTimeout(timer);
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
        await child.status;
      }
    } finally {
      await world.close();
    }
  },
);
