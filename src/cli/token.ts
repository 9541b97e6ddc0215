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
import {
  claudeCaller,
  judge,
  noted,
  readLastPrint,
  retryWindowMs,
  tokenHash,
  writeLastPrint,
} from "../token/last_print.ts";
import { AppError, LoginRequiredError } from "../errors.ts";
import { writeLoginState } from "../token/login_state.ts";
import { type Context, makeContext } from "./context.ts";
import { resolvePaths } from "../config/paths.ts";
import { makeSay, printToken, stderrLine } from "./output.ts";

/**
 * Runs `token`; returns the exit code (0) or throws an AppError. A failure's one line also
 * goes to the controlling terminal (SPEC.md §1.7, `src/term/failure_line.ts`): Claude Code's
 * TUI never shows the helper's stderr.
 */
export async function runToken(profileFlag?: string): Promise<number> {
  try {
    return await tokenOnce(profileFlag);
  } catch (error) {
    const message = error instanceof AppError
      ? error.message
      : `Internal error (please report it): ${error instanceof Error ? error.message : error}`;
    const profile = profileFlag ?? (Deno.env.get("AGENT_RUNNER_PROFILE") || "default");
    let marker: string | null = null;
    try {
      marker = `${resolvePaths().dir}/tty-line`;
    } catch {
      // no HOME: no marker, the line is written each time
    }
    await (await import("../term/failure_line.ts")).echoFailureToTerminal(message, profile, marker);
    throw error;
  }
}

async function tokenOnce(profileFlag?: string): Promise<number> {
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
  let token = await getToken(deps);
  const caller = claudeCaller(Deno.env, Deno.ppid);
  if (caller) token = await unlessRejected(token, caller, ctx.files.lastPrint, deps);
  for (const line of pending) stderrLine(line);
  printToken(token);
  return 0;
}

/**
 * SPEC.md §1.6: when Claude Code asks again for the token it just got, the API rejected it;
 * refresh once (see `last_print.ts` for the rule and its bounds). One read and one write of a
 * small file on the cached path.
 */
async function unlessRejected(
  token: string,
  caller: string,
  path: string,
  deps: TokenDeps,
): Promise<string> {
  const now = deps.now();
  const h = tokenHash(token);
  const record = readLastPrint(path);
  const verdict = judge(record, caller, h, now, retryWindowMs(deps.policy.helperTtlMs));
  if (verdict.kind === "print") {
    writeLastPrint(path, noted(record, caller, h, now));
    return token;
  }
  if (verdict.kind === "rejected_again") {
    throw new LoginRequiredError(
      `The API rejected the token again, although agent-runner-auth replaced a rejected one ${verdict.secondsAgo} s ago; the proxy does not accept this sign-in: run \`agent-runner-auth login\` (and \`agent-runner-auth doctor\`), or ask your administrator`,
    );
  }
  debug("Claude Code asked again for the token it just got: the API rejected it; refreshing");
  const fresh = await getToken({ ...deps, rejected: token });
  const freshHash = tokenHash(fresh);
  // Re-read: a parallel session may have recovered (and noted it) while we waited for the lock.
  const latest = readLastPrint(path);
  const rec = latest?.rec?.h === freshHash ? latest.rec : { at: deps.now(), h: freshHash };
  writeLastPrint(path, noted(latest, caller, freshHash, deps.now(), rec));
  return fresh;
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
