/**
 * `agent-runner-auth login`: the one verb that writes the config (SPEC.md §2, §3).
 *
 * Flags are merged into the existing file (unknown fields kept); a broken file is reported
 * and left alone. The login runs under the same exclusive lock as `token`, so a `token` that
 * starts meanwhile waits and then prints the new token instead of opening a second browser.
 * The config is written only after the tokens are stored, with the issuer learned from the
 * ID token and the store that worked pinned.
 *
 * @module
 */

import {
  ensurePrivateDir,
  loadConfigObject,
  type LoadedConfig,
  mergeConfig,
  writeConfig,
} from "../config/config.ts";
import { AppError, LoginRequiredError } from "../errors.ts";
import { openLockFile } from "../lock/open.ts";
import { browserLogin } from "../oauth/login.ts";
import { openStore } from "../store/select.ts";
import { detectInteractivity, planLogin } from "../term/interactive.ts";
import { save } from "../token/get_token.ts";
import { writeLoginState } from "../token/login_state.ts";
import type { Verb } from "./verb.ts";
import { makeContext } from "./context.ts";
import { checkLoginFlags, loginUpdates } from "./login_flags.ts";
import { makeSay, stderrLine } from "./output.ts";

/** The `login` verb. */
export const loginVerb: Verb = {
  name: "login",
  summary: "agent-runner-auth login: sign in through the browser and save the tenant's settings",
  usage: `Usage: agent-runner-auth login [--tenant-url URL --auth-domain HOST --client-id ID]
                              [--scope "S ..."] [--redirect-uri URI] [--no-browser]

Flags:
  --profile NAME       Sign in to (and save) the tenant NAME instead of the default one
  --tenant-url URL     The tenant's proxy URL (https://acme.proxy.example.com)
  --auth-domain HOST   Cognito hosted-UI domain, a host or URL (auth.example.com)
  --client-id ID       The public app client's id
  --scope S            Space-separated scopes (default "openid email profile")
  --redirect-uri URI   A registered loopback callback (default http://localhost:47621/callback,
                       then :47622 and :47623)
  --no-browser         Do not open a browser: print the URL and accept the pasted redirect URL

Flags given are saved to the config (unknown fields in it are kept); later logins need none.

Examples:
  agent-runner-auth login --tenant-url https://acme.proxy.example.com \\
      --auth-domain auth.example.com --client-id 1example23456789 --scope "openid email profile proxy/invoke"
  agent-runner-auth login --no-browser     # over SSH`,
  options: {
    "tenant-url": { type: "string" },
    "auth-domain": { type: "string" },
    "client-id": { type: "string" },
    "scope": { type: "string" },
    "redirect-uri": { type: "string" },
    "no-browser": { type: "boolean" },
  },
  run: (values) => runLogin(values),
};

async function runLogin(values: Record<string, string | boolean | undefined>): Promise<number> {
  const ctx = makeContext(values.profile as string | undefined);
  const { paths, tunables } = ctx;
  const existing = loadConfigObject(paths.config); // not JSON: refused, never overwritten
  // Flags are judged as flags first: a bad value or missing flags exit 2 naming the flag.
  const updates = loginUpdates(values);
  checkLoginFlags(updates, existing, paths.config, ctx.profile);
  const loaded: LoadedConfig = mergeConfig(existing, updates, paths.config, ctx.profile);

  // Decided before anything slow: a login that cannot work here fails at once, in one line.
  const inter = detectInteractivity();
  const paste = pasteReader(inter.terminal);
  const plan = planLogin(inter.browser, paste !== null, values["no-browser"] === true);
  if ("fail" in plan) throw new LoginRequiredError(plan.fail);

  // verify: a locked or never-created keyring still answers lookups; only a write proves it.
  const store = await openStore(loaded, Deno.env, { verify: true });
  const say = makeSay(inter.terminal);

  await ensurePrivateDir(paths.dir);
  const held = await (await openLockFile(ctx.files.lock)).acquire({
    timeoutMs: tunables.lockTimeoutMs,
    onWait: () => stderrLine("Waiting for another agent-runner-auth to finish…"),
  });
  try {
    await writeLoginState(ctx.files.loginState, {
      status: "in_progress",
      pid: Deno.pid,
      at: Date.now(),
    });
    let grant;
    try {
      grant = await browserLogin(loaded, {
        browser: plan.browser,
        paste: plan.paste,
        pasteBecause: plan.pasteBecause,
        timeoutMs: tunables.loginTimeoutMs,
        requestTimeoutMs: tunables.httpTimeoutMs,
        say,
        readLine: paste ?? undefined,
      });
    } catch (error) {
      const abandoned = error instanceof AppError && /timed out/i.test(error.message);
      await writeLoginState(ctx.files.loginState, {
        status: abandoned ? "abandoned" : "failed",
        pid: Deno.pid,
        at: Date.now(),
      });
      throw error;
    }
    await save({ store, items: ctx.items }, grant);
    if (grant.issuer && !loaded.section.issuer) loaded.section.issuer = grant.issuer;
    if (!loaded.section.store || loaded.section.store === "auto") {
      loaded.section.store = store.backend;
    }
    await writeConfig(loaded);
    await writeLoginState(ctx.files.loginState, {
      status: "succeeded",
      pid: Deno.pid,
      at: Date.now(),
    });

    const who = grant.access.user?.email ?? grant.access.user?.username ?? "you";
    const until = new Date(grant.access.expiresAt).toLocaleTimeString();
    say(
      `Signed in as ${who}; access token valid until ${until}. Tokens saved in ${store.backend}; config in ${paths.config}`,
    );
    return 0;
  } finally {
    held.release();
  }
}

/**
 * Where a pasted line can be read: stdin when it is a terminal, else the controlling terminal
 * (`/dev/tty`, Unix) when there is one; `null` when neither.
 */
function pasteReader(terminal: "stdio" | "devtty" | null): (() => Promise<string | null>) | null {
  if (Deno.stdin.isTerminal()) return () => readLine(Deno.stdin);
  if (terminal === null || Deno.build.os === "windows") return null;
  let tty: Deno.FsFile | null | undefined;
  return () => {
    if (tty === undefined) {
      try {
        tty = Deno.openSync("/dev/tty", { read: true });
      } catch {
        tty = null;
      }
    }
    return tty ? readLine(tty) : Promise.resolve(null);
  };
}

/** One line read from a terminal (at most 64 KiB), or `null` at its end. */
async function readLine(
  from: { read(p: Uint8Array): Promise<number | null> },
): Promise<string | null> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  let total = 0;
  while (total < 64 * 1024) {
    const n = await from.read(buf);
    if (n === null) return chunks.length ? decode(chunks) : null;
    chunks.push(buf.slice(0, n));
    total += n;
    if (buf.subarray(0, n).includes(10)) break;
  }
  return decode(chunks);
}

function decode(chunks: Uint8Array[]): string {
  const total = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    total.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(total).split("\n")[0];
}
