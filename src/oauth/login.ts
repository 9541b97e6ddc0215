/**
 * The browser login: authorization code + PKCE S256 through a loopback listener
 * (RFC 6749 §4.1, RFC 7636, RFC 8252; SPEC.md §5).
 *
 * Fresh verifier, `state` and `nonce` per attempt (oauth4webapi generates them). The browser
 * is opened at the listener's one-time start page, which redirects to the authorize URL, so
 * none of them is ever in a process's argv (SPEC.md §1.3); the full authorize URL is printed
 * as well, for a human to copy, because the browser may fail to open or open elsewhere.
 * In paste mode (`--no-browser`, SSH) the user may paste the final redirect URL or just the
 * code; the listener keeps running meanwhile (a forwarded port works), so whichever arrives
 * first wins. A paste that is not this sign-in's answer gets a one-line reason and a new
 * prompt, a bounded number of times, and is never echoed (it may hold a code). The whole
 * login is bounded: Cognito's own error pages never reach the listener (research B.3).
 *
 * When the ID token names no one (a provider that keeps profile claims in userinfo), the
 * user is asked of `/oauth2/userInfo` once, so `status` can name them.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { DEFAULT_REDIRECT_URIS, type LoadedConfig } from "../config/config.ts";
import { LoginFailedError } from "../errors.ts";
import { browserArgv, type BrowserCommand } from "../term/interactive.ts";
import {
  authorizationServer,
  describeOAuthError,
  exchangeCode,
  fetchUserInfo,
  type GrantResult,
  namesUser,
  publicClient,
} from "./client.ts";
import { listenForCallback, MAX_CALLBACK_URL } from "./loopback.ts";

/** Pastes that are not this sign-in's answer before the login gives up. */
export const MAX_PASTE_ATTEMPTS = 5;

/** How to run the login. */
export interface LoginOptions {
  /** The browser to open, or `null` to only print the URL. */
  browser: BrowserCommand | null;
  /** Read a pasted redirect URL or code from the terminal as well. */
  paste: boolean;
  /** Give up after this long. */
  timeoutMs: number;
  /** Per-request timeout for the code exchange. */
  requestTimeoutMs: number;
  /** Status lines for the user (stderr, and the terminal when stderr is captured). */
  say: (line: string) => void;
  /** Reads one line typed by the user (paste mode). */
  readLine?: () => Promise<string | null>;
  /**
   * Why paste mode was chosen without `--no-browser` (no browser can be opened: SSH), said
   * once with the switch.
   */
  pasteBecause?: string;
}

/** Runs the whole flow and returns the tokens (not yet stored). */
export async function browserLogin(
  loaded: LoadedConfig,
  options: LoginOptions,
): Promise<GrantResult> {
  const as = authorizationServer(loaded);
  const client = publicClient(loaded);
  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();

  const candidates = loaded.config.redirect_uri
    ? [loaded.config.redirect_uri]
    : DEFAULT_REDIRECT_URIS;
  const listener = listenForCallback(candidates, { as, client, state });
  const timers: ReturnType<typeof setTimeout>[] = [];
  try {
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: loaded.config.client_id,
      redirect_uri: listener.redirectUri,
      scope: loaded.config.scope,
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: "S256",
    }).toString();

    const pasting = options.paste && options.readLine !== undefined;
    // `ssh -L PORT:HOST:PORT` carries the browser's redirect from the user's machine to us.
    const { host, port } = new URL(listener.redirectUri);
    if (options.pasteBecause && pasting) {
      options.say(`${options.pasteBecause}, so switching to paste mode.`);
    }
    if (options.browser) {
      options.say(
        `Sign in to ${loaded.authBase.host} in your browser. If it does not open, visit:`,
      );
    } else {
      options.say(
        `Open this URL in a browser on any machine and sign in to ${loaded.authBase.host}:`,
      );
    }
    options.say(url.href);
    if (options.browser) openBrowser(options.browser, listener.serveStart(url.href), options.say);

    const waits: Promise<URLSearchParams>[] = [listener.result];
    if (pasting) {
      options.say(
        `Then paste the full address your browser ends on (${listener.redirectUri}?code=…; the page may fail to load), or just its code, and press Enter. ` +
          `With the port forwarded (ssh -L ${port}:${host}) the sign-in completes by itself.`,
      );
      waits.push(readPasted(options.readLine!, as, client, state, options.say));
    }
    options.say(
      `Waiting up to ${duration(options.timeoutMs)} for the sign-in; press Ctrl-C to cancel.`,
    );
    waits.push(
      new Promise((_, reject) => {
        timers.push(setTimeout(() => {
          reject(
            new LoginFailedError(
              `Sign-in timed out after ${
                Math.round(options.timeoutMs / 1000)
              } s without a callback; run \`agent-runner-auth login\` to try again`,
            ),
          );
        }, options.timeoutMs));
      }),
    );
    const params = await Promise.race(waits);
    await listener.close();
    const grant = await exchangeCode(loaded, params, listener.redirectUri, verifier, nonce, {
      timeoutMs: options.requestTimeoutMs,
    });
    if (!namesUser(grant.access.user)) {
      const sub = grant.access.user?.sub;
      const user = await fetchUserInfo(loaded, grant.access.token, sub, {
        timeoutMs: options.requestTimeoutMs,
      });
      if (user) grant.access.user = { ...grant.access.user, ...user };
    }
    return grant;
  } finally {
    for (const t of timers) clearTimeout(t);
    await listener.close();
  }
}

/**
 * Starts the browser without a shell (the URL is one argv entry, SPEC.md §1.3), with its
 * output discarded: `token`'s stdout is a protocol. We do not wait for it.
 */
function openBrowser(browser: BrowserCommand, url: string, say: (line: string) => void): void {
  if (!/^https?:\/\//.test(url)) throw new LoginFailedError("Refusing to open a non-http(s) URL");
  try {
    const child = new Deno.Command(browser.program, {
      args: browserArgv(browser, url),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.status.then((s) => {
      if (!s.success) {
        say(
          `The browser command "${browser.program}" exited with ${s.code}; open the URL above yourself.`,
        );
      }
    }, () => {});
    child.unref();
  } catch (error) {
    say(
      `Cannot start the browser "${browser.program}" (${
        (error as Error).name
      }); open the URL above yourself.`,
    );
  }
}

/** "5 min", "90 s": how long the login waits, for the one line that says so. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 && s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}

/** A pasted line: callback parameters to check, or why it cannot be one. */
export type Pasted = { params: URLSearchParams } | { reason: string };

/**
 * Reads what the user pasted: the redirect URL (with or without scheme), its query, or the
 * bare code. Never throws and never puts the line into a reason: it may hold a code.
 */
export function parsePaste(line: string, state: string): Pasted {
  const text = line.trim();
  if (text.length > MAX_CALLBACK_URL) {
    return { reason: "it is too long to be the redirect address" };
  }
  const looksLikeUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(text);
  if (looksLikeUrl || text.includes("?") || text.includes("=")) {
    let query: string;
    if (looksLikeUrl) {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        return { reason: "it is not a valid URL" };
      }
      query = url.search;
    } else {
      query = text.slice(text.indexOf("?") + 1);
    }
    const params = new URLSearchParams(query);
    if (!params.has("code") && !params.has("error")) {
      return {
        reason: "it has no code= in it (sign in first, then copy the address the browser ends on)",
      };
    }
    return { params };
  }
  // A bare code: Cognito's are UUIDs; anything with spaces or control characters is not one.
  if (!/^[\x21-\x7e]{1,2048}$/.test(text)) return { reason: "it is neither a URL nor a code" };
  return { params: new URLSearchParams({ code: text, state }) };
}

/**
 * Checks a paste against this sign-in: the callback parameters to exchange, an error when the
 * authorization server answered with one (right `state`, `?error=`), or a reason to ask again.
 */
export function checkPaste(
  line: string,
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  state: string,
): { params: URLSearchParams } | { error: LoginFailedError } | { reason: string } {
  const pasted = parsePaste(line, state);
  if ("reason" in pasted) return pasted;
  const got = pasted.params.get("state");
  try {
    const valid = oauth.validateAuthResponse(as, client, pasted.params, state);
    if (valid.get("code")) return { params: valid };
    return { reason: "its code is empty" };
  } catch (error) {
    if (error instanceof oauth.AuthorizationResponseError) {
      return { error: new LoginFailedError(describeOAuthError(error.error, "sign-in")) };
    }
    if (got === null) {
      return { reason: "it has no state= (paste the whole address, or just the code)" };
    }
    if (got !== state) return { reason: "it belongs to another sign-in (its state differs)" };
    return { reason: "it is not a valid answer to this sign-in" };
  }
}

async function readPasted(
  readLine: () => Promise<string | null>,
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  state: string,
  say: (line: string) => void,
): Promise<URLSearchParams> {
  let wrong = 0;
  while (true) {
    let line: string | null;
    try {
      line = await readLine();
    } catch {
      line = null;
    }
    if (line === null) return new Promise(() => {}); // terminal closed: rely on the listener
    if (line.trim() === "") continue;
    const checked = checkPaste(line, as, client, state);
    if ("params" in checked) return checked.params;
    if ("error" in checked) throw checked.error;
    wrong++;
    if (wrong >= MAX_PASTE_ATTEMPTS) {
      throw new LoginFailedError(
        `Gave up after ${wrong} pastes that were not this sign-in's redirect address (the last: ${checked.reason}); run \`agent-runner-auth login --no-browser\` to try again`,
      );
    }
    const left = MAX_PASTE_ATTEMPTS - wrong;
    say(
      `That is not this sign-in's redirect address: ${checked.reason}. Paste it again (${left} ${
        left === 1 ? "try" : "tries"
      } left):`,
    );
  }
}
