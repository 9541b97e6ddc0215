/**
 * `agent-runner-auth logout [--all]`: revoke the refresh token at `/oauth2/revoke` (RFC 7009),
 * then delete the local tokens whatever the server said: a user who logs out must end with
 * nothing in the keychain even when the network is down. A 503 or a transport failure is
 * retried twice with back-off. With `--all`, every profile in the config.
 *
 * It takes the profile's exclusive lock first, as `token` does before a refresh or a login
 * (SPEC.md §1.4): a refresh in flight finishes and saves, and then its tokens are the ones
 * revoked and removed; nothing is written back after "signed out" (issue 11 #1). The wait is
 * bounded by `AGENT_RUNNER_LOCK_TIMEOUT_MS` and said once on stderr. Under the same lock it
 * records `signed_out` in the login-state file, so a `token` call that began before the logout
 * does not open a browser to sign straight back in.
 *
 * When the profile's config has a `logout_uri` (a registered sign-out URL), the managed-login
 * `/logout` page is opened too (or its URL printed), since Cognito's 1-hour session cookie
 * would otherwise sign the next `login` straight back in (research B.7, B.11).
 *
 * @module
 */

import {
  ensurePrivateDir,
  loadConfigObject,
  profileNames,
  validateConfig,
} from "../config/config.ts";
import { profileFiles, profileItems, selectProfile } from "../config/profile.ts";
import { type Paths, resolvePaths } from "../config/paths.ts";
import { readTunables, type Tunables } from "../config/tunables.ts";
import { ConfigError, NetworkError } from "../errors.ts";
import type { HeldLock } from "../lock/lock.ts";
import { openLockFile } from "../lock/open.ts";
import { openStore } from "../store/select.ts";
import { writeLoginState } from "../token/login_state.ts";
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
        await logoutProfile(raw, paths, profile, tunables);
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
  paths: Paths,
  profile: string,
  tunables: Tunables,
) {
  const loaded = validateConfig(raw, paths.config, profile);
  const store = await openStore(loaded);
  const items = profileItems(profile);
  const files = profileFiles(paths, profile);
  const held = await takeLock(paths.dir, files.lock, profile, tunables.lockTimeoutMs);
  try {
    await revokeAndDelete(loaded, store, items, tunables.httpTimeoutMs, profile);
    await writeLoginState(files.loginState, {
      status: "signed_out",
      pid: Deno.pid,
      at: Date.now(),
    });
  } finally {
    held.release();
  }
  await openSignOutPage(loaded);
}

/** The profile's exclusive lock, the one `token` refreshes under; the wait is said once. */
async function takeLock(
  dir: string,
  path: string,
  profile: string,
  timeoutMs: number,
): Promise<HeldLock> {
  await ensurePrivateDir(dir);
  const lock = await openLockFile(path);
  return await lock.acquire({
    timeoutMs,
    onWait: () =>
      stderrLine(
        `Waiting for another agent-runner-auth (profile ${profile}) to finish before signing out…`,
      ),
  });
}

async function revokeAndDelete(
  loaded: ReturnType<typeof validateConfig>,
  store: Awaited<ReturnType<typeof openStore>>,
  items: { access: string; refresh: string },
  timeoutMs: number,
  profile: string,
) {
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
}

/** With a `logout_uri` in the config: the hosted UI's `/logout` page (printed, and opened). */
async function openSignOutPage(loaded: ReturnType<typeof validateConfig>) {
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
