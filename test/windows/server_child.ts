/**
 * The Cognito-compatible test server in its own `deno.exe`, for the Wine end-to-end tests:
 * rotation on, 3,000-character refresh tokens (so the refresh item is chunked in the Credential
 * Manager), one client `test-client` with the given redirect URI. Prints one JSON line
 * (`{"url": …}`) when listening and keeps `stateFile` (counters and issued secrets, written
 * atomically) current; runs until killed.
 *
 * Why a separate process: Deno on Windows caps its blocking thread pool at 4 × the CPU count and
 * each piped stdout or stderr of a child process occupies one of those threads until the child
 * exits. A test that runs 8 CLI processes with piped output on a 2-CPU machine so fills all 8,
 * and a server in that same process can then not finish `crypto.subtle.sign` (which needs the
 * same pool) until a child exits: under Wine the refresh grants stalled for minutes.
 *
 * Usage: `deno run -A server_child.ts <redirectUri> <stateFile>`
 *
 * @module
 */

import { startCognitoServer, stateSnapshot } from "../cognito_server.ts";

const [redirectUri, stateFile] = Deno.args;
const write = (text: string) => {
  const temp = `${stateFile}.tmp`;
  Deno.writeTextFileSync(temp, text);
  Deno.renameSync(temp, stateFile);
};
const server = await startCognitoServer({
  clients: [{ clientId: "test-client", redirectUris: [redirectUri] }],
  rotation: true,
  refreshTokenLength: 3000,
  onChange: (s) => write(stateSnapshot(s)),
});
write(stateSnapshot(server));
console.log(JSON.stringify({ url: server.url }));
