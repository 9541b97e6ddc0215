/**
 * `token` when it comes with flags (`--help`); the bare verb is dispatched in `src/main.ts`.
 *
 * @module
 */

import type { Verb } from "./verb.ts";

/** The `token` verb for the parser. */
export const tokenVerb: Verb = {
  name: "token",
  summary: "agent-runner-auth token: print a valid access token on stdout and nothing else",
  usage: `Usage: agent-runner-auth token

Prints the raw access token and one newline on stdout; all status goes to stderr.
  cached       a stored token fresh enough for CLAUDE_CODE_API_KEY_HELPER_TTL_MS is printed (no network)
  refresh      otherwise the refresh token is used (one process refreshes, the others wait)
  login        with no usable tokens, a terminal and a browser, a browser sign-in starts
  otherwise    exit 1 with one line on stderr naming \`agent-runner-auth login\`

Example (~/.claude/settings.json):
  { "apiKeyHelper": "agent-runner-auth token",
    "env": { "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000" } }`,
  options: {},
  run: async () => {
    const { runToken } = await import("./token.ts");
    return await runToken();
  },
};
