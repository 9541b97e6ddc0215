import assert from "node:assert/strict";
import { loginCommand, terminalLine } from "./failure_line.ts";

const env = (vars: Record<string, string> = {}) => ({ get: (k: string) => vars[k] });

Deno.test("failure line: the reason, then the one command to run in another terminal", () => {
  assert.equal(
    terminalLine(
      "Not signed in, and cannot sign in here: no browser can be opened (set $BROWSER, or use `login --no-browser`); run `agent-runner-auth login`",
      env(),
      "default",
    ),
    "agent-runner-auth (Claude Code's apiKeyHelper) cannot give Claude Code a token: Not signed in, and cannot sign in here: no browser can be opened (set $BROWSER, or use `login --no-browser`). In another terminal, run: agent-runner-auth login",
  );
});

Deno.test("failure line: over SSH without a display the login is the paste mode; profiles are named", () => {
  const ssh = env({ SSH_CONNECTION: "10.0.0.1 5000 10.0.0.2 22" });
  assert.equal(loginCommand(ssh, "default"), "agent-runner-auth login --no-browser");
  assert.equal(
    loginCommand(env({ SSH_TTY: "/dev/pts/1", DISPLAY: ":10" }), "work"),
    "agent-runner-auth login --profile work",
  );
  assert.match(
    terminalLine(
      "The API rejected the token and there is no refresh token to get another; run `agent-runner-auth login`",
      ssh,
      "work",
    ),
    /: The API rejected the token and there is no refresh token to get another\. In another terminal, run: agent-runner-auth login --no-browser --profile work$/,
  );
});

Deno.test("failure line: another named command is kept; no command -> doctor; always one line", () => {
  assert.match(
    terminalLine(
      "Not configured: /x/config.json does not exist; run `agent-runner-auth login --tenant-url URL --auth-domain HOST --client-id ID`",
      env(),
      "default",
    ),
    /does not exist\. In another terminal, run: agent-runner-auth login --tenant-url URL --auth-domain HOST --client-id ID$/,
  );
  const line = terminalLine(
    "Secret Service did not answer within 3000 ms\n(lookup)",
    env(),
    "default",
  );
  assert.match(
    line,
    /within 3000 ms \(lookup\)\. In another terminal, run: agent-runner-auth doctor$/,
  );
  assert.ok(!line.includes("\n"));
});
