/**
 * The browser login: authorization code + PKCE S256 through a loopback listener
 * (RFC 6749 §4.1, RFC 7636, RFC 8252; SPEC.md §5).
 *
 * Fresh verifier, `state` and `nonce` per attempt (oauth4webapi generates them); the URL is
 * always printed as well as opened, because the browser may fail to open or open elsewhere.
 * In paste mode (`--no-browser`, SSH) the user may paste the final redirect URL or just the
 * code; the listener keeps running meanwhile, so whichever arrives first wins. The whole
 * login is bounded: Cognito's own error pages never reach the listener (research B.3).
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { DEFAULT_REDIRECT_URIS, type LoadedConfig } from "../config/config.ts";
import { LoginFailedError } from "../errors.ts";
import { browserArgv, type BrowserCommand } from "../term/interactive.ts";
import { authorizationServer, exchangeCode, type GrantResult, publicClient } from "./client.ts";
import { listenForCallback } from "./loopback.ts";

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

    options.say(`Sign in to ${loaded.authBase.host} in your browser. If it does not open, visit:`);
    options.say(url.href);
    if (options.browser) openBrowser(options.browser, url.href, options.say);

    const waits: Promise<URLSearchParams>[] = [listener.result];
    if (options.paste && options.readLine) {
      options.say(
        "Or paste the full URL your browser was sent to (or just the code) and press Enter:",
      );
      waits.push(readPasted(options.readLine, as, client, state));
    }
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
    return await exchangeCode(loaded, params, listener.redirectUri, verifier, nonce, {
      timeoutMs: options.requestTimeoutMs,
    });
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

async function readPasted(
  readLine: () => Promise<string | null>,
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  state: string,
): Promise<URLSearchParams> {
  while (true) {
    const line = (await readLine())?.trim();
    if (line === undefined) return new Promise(() => {}); // terminal closed: rely on the listener
    if (line === "") continue;
    const params = line.includes("?") || line.includes("code=")
      ? new URL(line.includes("://") ? line : `http://x/?${line.replace(/^.*\?/, "")}`).searchParams
      : new URLSearchParams({ code: line, state });
    try {
      const valid = oauth.validateAuthResponse(as, client, params, state);
      if (valid.get("code")) return valid;
    } catch (error) {
      if (error instanceof oauth.AuthorizationResponseError) {
        throw new LoginFailedError(`The sign-in failed (${error.error})`);
      }
    }
    console.error(
      "agent-runner-auth: that is not the redirect URL of this sign-in; paste it again:",
    );
  }
}
