/**
 * `agent-runner-auth logout [--all]`: revoke the refresh token at `/oauth2/revoke` (RFC 7009),
 * then delete the local tokens whatever the server said: a user who logs out must end with
 * nothing in the keychain even when the network is down. A 503 or a transport failure is
 * retried twice with back-off. With `--all`, every profile in the config.
 *
 * When the profile's config has a `logout_uri` (a registered sign-out URL), the managed-login
 * `/logout` page is opened too (or its URL printed), since Cognito's 1-hour session cookie
 * would otherwise sign the next `login` straight back in (research B.7, B.11).
 *
 * @module
 */

import { loadConfigObject, profileNames, validateConfig } from "../config/config.ts";
import { profileItems, selectProfile } from "../config/profile.ts";
import { resolvePaths } from "../config/paths.ts";
import { readTunables } from "../config/tunables.ts";
import { ConfigError, NetworkError } from "../errors.ts";
import { openStore } from "../store/select.ts";
import { decodeRefresh } from "../token/record.ts";
import type { Verb } from "./verb.ts";
import { stderrLine } from "./output.ts";

const RETRY_DELAYS_MS = [500, 1500];

/** The `logout` verb. */
export const logoutVerb: Verb = {
  name: "logout",
  summary:
    "agent-runner-auth logout: revoke the session at the auth server and delete local tokens",
  usage: `Usage: agent-runner-auth logout [--all] [--profile NAME]

Revokes the refresh token at <auth domain>/oauth2/revoke (which also ends the access tokens
issued from it), then deletes both tokens from the store, even when the server cannot be
reached. --all does this for every profile in the config.

Examples:
  agent-runner-auth logout
  agent-runner-auth logout --all`,
  options: { all: { type: "boolean" } },
  run: async (values) => {
    const paths = resolvePaths();
    const tunables = readTunables();
    const raw = loadConfigObject(paths.config);
    if (!raw) {
      throw new ConfigError(
        `Not configured: ${paths.config} does not exist; nothing to log out of`,
      );
    }
    const names = values.all
      ? profileNames(raw)
      : [selectProfile(values.profile as string | undefined)];
    // Every profile is attempted; the first failure is rethrown at the end for its exit code.
    let firstError: unknown;
    for (const profile of names) {
      try {
        await logoutProfile(raw, paths.config, profile, tunables.httpTimeoutMs);
      } catch (error) {
        firstError ??= error;
        if (names.length > 1) {
          stderrLine(`${profile}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
    if (firstError !== undefined) throw firstError;
    return 0;
  },
};

async function logoutProfile(
  raw: Record<string, unknown>,
  path: string,
  profile: string,
  timeoutMs: number,
) {
  const loaded = validateConfig(raw, path, profile);
  const store = await openStore(loaded);
  const items = profileItems(profile);
  const refreshRaw = await store.get(items.refresh);
  const refresh = refreshRaw ? decodeRefresh(refreshRaw) : null;
  let revoked = "no refresh token to revoke";
  if (refresh?.ok) {
    const { revokeRefreshToken } = await import("../oauth/client.ts");
    for (let attempt = 0;; attempt++) {
      try {
        await revokeRefreshToken(loaded, refresh.record.token, { timeoutMs });
        revoked = `refresh token revoked at ${loaded.authBase.host}`;
        break;
      } catch (error) {
        const retry = error instanceof NetworkError && error.retryable &&
          attempt < RETRY_DELAYS_MS.length;
        if (retry) {
          await new Promise((r) =>
            setTimeout(r, (error as NetworkError).retryAfterMs ?? RETRY_DELAYS_MS[attempt])
          );
          continue;
        }
        revoked = `could not revoke the refresh token (${
          (error as Error).message
        }); it stays valid at the server until it expires`;
        break;
      }
    }
  }
  // Whatever the server said: nothing stays in the store.
  const removedRefresh = await store.delete(items.refresh);
  const removedAccess = await store.delete(items.access);
  const removed = [removedRefresh, removedAccess].filter(Boolean).length;
  stderrLine(
    `Signed out of profile ${profile}: ${revoked}; removed ${removed} item${
      removed === 1 ? "" : "s"
    } from ${store.backend}`,
  );

  const logoutUri = loaded.section.logout_uri;
  if (typeof logoutUri === "string" && logoutUri !== "") {
    const url = new URL(`${loaded.authBase.href.replace(/\/$/, "")}/logout`);
    url.search = new URLSearchParams({ client_id: loaded.config.client_id, logout_uri: logoutUri })
      .toString();
    const { detectInteractivity, browserArgv } = await import("../term/interactive.ts");
    const inter = detectInteractivity();
    stderrLine(`To end the browser session too, open: ${url.href}`);
    if (inter.interactive && inter.browser) {
      try {
        new Deno.Command(inter.browser.program, {
          args: browserArgv(inter.browser, url.href),
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn().unref();
      } catch {
        // the URL is printed above
      }
    }
  }
}
