/**
 * `agent-runner-auth token`: wires the real dependencies into the use case and prints.
 *
 * The cached path imports nothing but Deno APIs: config parsing, the store, the pure state
 * machine. The lock (libc FFI), oauth4webapi and the login flow are imported only when the
 * cache cannot answer (SPEC.md §8).
 *
 * @module
 */

import { requireConfig } from "../config/config.ts";
import { resolvePaths } from "../config/paths.ts";
import { readTunables } from "../config/tunables.ts";
import { openStore } from "../store/select.ts";
import { ACCESS_ITEM, REFRESH_ITEM } from "../store/store.ts";
import { policyFromEnv } from "../token/classify.ts";
import { getToken } from "../token/get_token.ts";
import { writeLoginState } from "../token/login_state.ts";
import { makeSay, printToken, stderrLine } from "./output.ts";

/** Runs `token`; returns the exit code (0) or throws an AppError. */
export async function runToken(): Promise<number> {
  const paths = resolvePaths();
  const loaded = requireConfig(paths.config);
  const tunables = readTunables();
  const { policy, warning } = policyFromEnv(Deno.env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"));
  if (warning) stderrLine(warning);
  const store = await openStore(loaded);

  const token = await getToken({
    store,
    items: { access: ACCESS_ITEM, refresh: REFRESH_ITEM },
    lock: async () => {
      const { openLockFile } = await import("../lock/open.ts");
      const { ensurePrivateDir } = await import("../config/config.ts");
      await ensurePrivateDir(paths.dir);
      return openLockFile(paths.lock);
    },
    loginStatePath: paths.loginState,
    writeLoginState: (state) => writeLoginState(paths.loginState, state),
    now: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    policy,
    warn: stderrLine,
    interactivity: async () => (await import("../term/interactive.ts")).detectInteractivity(),
    refresh: async (refreshToken) => {
      const { refreshGrant } = await import("../oauth/client.ts");
      return await refreshGrant(loaded, refreshToken, { timeoutMs: tunables.httpTimeoutMs });
    },
    login: async (inter) => {
      const { browserLogin } = await import("../oauth/login.ts");
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
  });
  printToken(token);
  return 0;
}
