/**
 * `agent-runner-auth refresh [--force]`: refresh now, for cron jobs and before long offline
 * stretches. It takes the same lock as `token` (one refresh however many callers), never opens
 * a browser, never prints a token, and, unlike `token`, fails when the refresh fails instead of
 * falling back to the still-valid old token.
 *
 * @module
 */

import { requireConfig } from "../config/config.ts";
import { openStore } from "../store/select.ts";
import { DEFAULT_POLICY, policyFromEnv } from "../token/classify.ts";
import { getToken } from "../token/get_token.ts";
import { decodeAccess } from "../token/record.ts";
import { makeContext } from "./context.ts";
import type { Verb } from "./verb.ts";
import { stderrLine } from "./output.ts";
import { logWarning, tokenDeps } from "./token.ts";

/** The `refresh` verb. */
export const refreshVerb: Verb = {
  name: "refresh",
  summary: "agent-runner-auth refresh: refresh the access token now (never opens a browser)",
  usage: `Usage: agent-runner-auth refresh [--force] [--profile NAME]

Without --force the token is refreshed only when \`token\` would refresh it (it is not fresh
enough for CLAUDE_CODE_API_KEY_HELPER_TTL_MS); with --force it is refreshed in any case.
Prints nothing on stdout. Exit 0 when a fresh token is stored, 1 when a new sign-in is needed,
5 when the auth server cannot be reached.

Examples:
  agent-runner-auth refresh --force
  */30 * * * *  agent-runner-auth refresh     # crontab: keep the session warm`,
  options: { force: { type: "boolean" } },
  run: async (values) => {
    const ctx = makeContext(values.profile as string | undefined);
    const loaded = requireConfig(ctx.paths.config, ctx.profile);
    const store = await openStore(loaded);
    const { policy } = policyFromEnv(Deno.env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"));
    const before = await store.get(ctx.items.access);
    const deps = tokenDeps(
      ctx,
      loaded,
      store,
      policy ?? DEFAULT_POLICY,
      logWarning(ctx, "refresh"),
    );
    deps.force = values.force === true;
    deps.strict = true;
    // Its failure speaks of what `refresh` does (renew a stored sign-in), never of a browser
    // being held back by the cooldown (issue 13 item 6).
    deps.signsIn = false;
    deps.interactivity = () => ({
      interactive: false,
      reason: "`refresh` only renews a stored sign-in",
      terminal: null,
      browser: null,
    });
    const token = await getToken(deps);
    const after = await store.get(ctx.items.access);
    const record = after ? decodeAccess(after, Date.now()) : null;
    const until = record?.ok ? new Date(record.record.expiresAt).toISOString() : "unknown";
    const changed = before !== after;
    stderrLine(
      changed
        ? `Refreshed the access token (profile ${ctx.profile}); valid until ${until}`
        : `The access token is still fresh (profile ${ctx.profile}), valid until ${until}; use --force to refresh anyway`,
    );
    void token;
    return 0;
  },
};
