/**
 * `deno task demo`: the product's main job on a laptop with no Cognito tenant.
 *
 * Starts the Cognito-compatible server on 127.0.0.1 and a private Secret Service, writes a
 * config into a throwaway directory (as the install wizard would), and runs the real CLI from
 * source, with the compiled binary's permissions, three times:
 *   1. `token` with no tokens, in a terminal: browser sign-in (the test browser), then print;
 *   2. `token` again: cached, no request;
 *   3. `token` with a helper TTL the cached token cannot cover: silent refresh;
 *   4. the same after the server revoked the session, with no terminal: exit 1.
 * Tokens are shown shortened; timings and what the server saw go to stderr. Everything is
 * removed at the end.
 *
 * @module
 */

import { secretServiceAvailable } from "./fixtures/secret_service.ts";
import { type RunResult, World } from "./harness.ts";

const say = (line = "") => console.error(line);

function shortToken(r: RunResult): string {
  const t = r.stdout.trimEnd();
  return `${t.slice(0, 20)}…${t.slice(-6)} (${t.length} chars)`;
}

function report(step: string, r: RunResult, world: World): void {
  if (r.code !== 0) {
    say(`  ✗ ${step}: exit ${r.code}`);
    for (const line of r.stderr.trimEnd().split("\n")) say(`    ${line}`);
    throw new Error(`${step} failed`);
  }
  const c = world.server.counters;
  say(`  ✓ ${step}: ${r.ms.toFixed(0)} ms  → ${shortToken(r)}`);
  say(
    `    server saw: authorize=${c.authorize} code-exchange=${c.tokenByGrant.authorization_code} refresh=${c.tokenByGrant.refresh_token}`,
  );
  for (const line of r.stderr.trimEnd().split("\n").filter(Boolean)) say(`    stderr: ${line}`);
}

const availability = secretServiceAvailable();
if (!availability.ok) {
  say(`The demo needs a Secret Service to run against: ${availability.why}.`);
  say("On Debian/Ubuntu: sudo apt-get install gnome-keyring libsecret-1-0 libsecret-tools dbus");
  Deno.exit(1);
}

say("agent-runner-auth demo: a local Cognito-compatible server, a private gnome-keyring,");
say("and the real CLI (deno task cli) as Claude Code would run it.\n");
// 10-minute tokens, so a helper TTL of 9 minutes forces the refresh in step 3.
const world = await World.create({ server: { accessTokenLifetimeSeconds: 600 } });
try {
  say(`  auth server  ${world.server.url}  (issuer ${world.server.issuer})`);
  say(`  config       ${world.configDir}/config.json`);
  say(`  store        Secret Service on a private D-Bus session\n`);

  say("1. No tokens yet, a terminal and a browser: `token` signs in through the browser");
  report("token (interactive login)", await world.runInTerminal(["token"]), world);

  say("\n2. A fresh token in the keychain: `token` prints it without any request");
  report("token (cached)", await world.run(["token"]), world);

  say(
    "\n3. Claude Code will reuse the token for 9 min (CLAUDE_CODE_API_KEY_HELPER_TTL_MS=540000),",
  );
  say("   longer than the cached one has left: `token` refreshes silently");
  report(
    "token (silent refresh)",
    await world.run(["token"], { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "540000" }),
    world,
  );

  say("\n4. The session is revoked at the server (GlobalSignOut) and nobody is at the keyboard:");
  say("   the refresh gets invalid_grant, the stored tokens are removed, one clear line, exit 1");
  world.server.revokeAll();
  const revoked = await world.run(["token"], { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "540000" });
  say(`  exit ${revoked.code}, stdout ${JSON.stringify(revoked.stdout)}`);
  for (const line of revoked.stderr.trimEnd().split("\n")) say(`    stderr: ${line}`);
  say("\nDone. Run the tests with: deno task test");
} finally {
  await world.close();
}
