/**
 * `agent-runner-auth token`: wires the real dependencies into the use case and prints.
 *
 * The cached path imports nothing but Deno APIs: config parsing, the store, the pure state
 * machine. The lock (libc FFI), oauth4webapi, the login flow and the log are imported only
 * when the cache cannot answer (SPEC.md §8).
 *
 * @module
 */

import { ensurePrivateDir, type LoadedConfig, requireConfig } from "../config/config.ts";
import { appendLog, debug } from "../log.ts";
import { openStore } from "../store/select.ts";
import type { TokenStore } from "../store/store.ts";
import { type FreshnessPolicy, policyFromEnv } from "../token/classify.ts";
import { getToken, type TokenDeps } from "../token/get_token.ts";
import { writeLoginState } from "../token/login_state.ts";
import { type Context, makeContext } from "./context.ts";
import { makeSay, printToken, stderrLine } from "./output.ts";

/** Runs `token`; returns the exit code (0) or throws an AppError. */
export async function runToken(profileFlag?: string): Promise<number> {
  const ctx = makeContext(profileFlag);
  const loaded = requireConfig(ctx.paths.config, ctx.profile);
  // Warnings go with a printed token; when `token` fails, Claude Code shows its stderr as the
  // one error line (SPEC.md §1.1), so they then stay in the log file only.
  const pending: string[] = [];
  const warn = (line: string) => {
    pending.push(line);
    appendLog(ctx.paths.log, `token [${ctx.profile}] warning: ${line}`);
  };
  const { policy, warning } = policyFromEnv(Deno.env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"));
  if (warning) warn(warning);
  // The encrypted file's "weaker than a keychain" notice is for login, status and doctor: a
  // helper's stderr stays one line (SPEC.md §1.1).
  const store = await openStore(loaded, Deno.env, { onWarning: (w) => debug(w) });
  debug(
    `token: profile ${ctx.profile}, store ${store.backend}, config ${ctx.paths.config}, helper TTL ${policy.helperTtlMs} ms`,
  );
  const deps = tokenDeps(ctx, loaded, store, policy, warn);
  deps.notify = stderrLine;
  const token = await getToken(deps);
  for (const line of pending) stderrLine(line);
  printToken(token);
  return 0;
}

/** A warning for the user (stderr) that is also kept in the log file. */
export function logWarning(ctx: Context, verb: string): (line: string) => void {
  return (line: string) => {
    stderrLine(line);
    appendLog(ctx.paths.log, `${verb} [${ctx.profile}] warning: ${line}`);
  };
}

/** The real dependencies of {@linkcode getToken}; `refresh` reuses them with its own switches. */
export function tokenDeps(
  ctx: Context,
  loaded: LoadedConfig,
  store: TokenStore,
  policy: FreshnessPolicy,
  warn: (line: string) => void,
): TokenDeps {
  const { paths, tunables } = ctx;
  return {
    store,
    items: ctx.items,
    lock: async () => {
      // A grant usually follows: its module (and oauth4webapi) loads while the store warms up.
      import("../oauth/client.ts").catch(() => {});
      const { openLockFile } = await import("../lock/open.ts");
      await ensurePrivateDir(paths.dir);
      debug(`cached token not fresh enough; taking the lock ${ctx.files.lock}`);
      return openLockFile(ctx.files.lock);
    },
    loginStatePath: ctx.files.loginState,
    writeLoginState: (state) => writeLoginState(ctx.files.loginState, state),
    now: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    policy,
    warn,
    interactivity: async () => (await import("../term/interactive.ts")).detectInteractivity(),
    refresh: async (refreshToken) => {
      const { refreshGrant } = await import("../oauth/client.ts");
      debug(`refresh grant at ${loaded.authBase.origin} (timeout ${tunables.httpTimeoutMs} ms)`);
      const grant = await refreshGrant(loaded, refreshToken, { timeoutMs: tunables.httpTimeoutMs });
      debug(
        `refreshed: valid until ${
          new Date(grant.access.expiresAt).toISOString()
        }, new refresh token: ${grant.refreshToken ? "yes (rotation)" : "no"}`,
      );
      return grant;
    },
    lookupUser: async (accessToken, sub) => {
      const { fetchUserInfo } = await import("../oauth/client.ts");
      return await fetchUserInfo(loaded, accessToken, sub, { timeoutMs: tunables.httpTimeoutMs });
    },
    login: async (inter) => {
      const { browserLogin } = await import("../oauth/login.ts");
      debug(
        `browser login with ${
          inter.browser?.program ?? "no browser"
        } (terminal: ${inter.terminal})`,
      );
      return await browserLogin(loaded, {
        browser: inter.browser,
        paste: false,
        timeoutMs: tunables.loginTimeoutMs,
        requestTimeoutMs: tunables.httpTimeoutMs,
        say: makeSay(inter.terminal),
      });
    },
    lockTimeoutMs: tunables.lockTimeoutMs,
    cooldownMs: tunables.loginCooldownMs,
    pid: Deno.pid,
  };
}
