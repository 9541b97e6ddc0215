/**
 * The loopback redirect listener (RFC 8252 §7.3 and §8.3, SPEC.md §5).
 *
 * - Binds to loopback only: 127.0.0.1, and ::1 too when the redirect host is `localhost`
 *   (RFC 8252 recommends trying both; ::1 may be missing, which is fine).
 * - The port is fixed: Cognito matches callback URLs exactly, port included (research B.2).
 *   When it is taken the caller tries the next registered URI, and finally fails naming the
 *   port and the fix.
 * - Accepts exactly one valid callback: the redirect path, a loopback `Host` header (a page
 *   on another site cannot reach us through DNS rebinding), a bounded query, and the expected
 *   `state` (checked by oauth4webapi). Anything else gets an error page and is ignored, so a
 *   stray or forged request cannot end the login, while a genuine `?error=` is reported.
 * - Serves the browser's start page (SPEC.md §1.3): the browser is opened at
 *   `http://<redirect host>:<port>/start/<32 random bytes>`, which answers 302 to the authorize
 *   URL, so `state`, `nonce` and the PKCE challenge never appear in the browser's argv
 *   (`/proc/PID/cmdline` is readable by every local user, who could otherwise race a callback
 *   of their own: login CSRF, issue 11 finding 5). The path is in that argv, so it is served
 *   once: a second request means someone else read it, and since we cannot tell which request
 *   was the browser's, the sign-in is cancelled rather than risk finishing someone else's.
 *
 * Needs `--allow-net`.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { LoginFailedError } from "../errors.ts";
import { describeOAuthError } from "./client.ts";

/** Longest request target we read; real callbacks are a few hundred bytes. */
export const MAX_CALLBACK_URL = 8 * 1024;

/** A running listener. */
export interface CallbackListener {
  /** The redirect URI actually bound (one of the candidates). */
  redirectUri: string;
  /** Resolves with the validated callback parameters; rejects with `LoginFailedError`. */
  result: Promise<URLSearchParams>;
  /** Stops listening; safe to call more than once. */
  close(): Promise<void>;
  /**
   * Serves a one-time start page that redirects to `authorizeUrl`; returns its URL (the one to
   * give the browser). Call at most once.
   */
  serveStart(authorizeUrl: string): string;
}

/** Where the start page lives: a fixed prefix plus an unguessable segment. */
export const START_PREFIX = "/start/";

/** What the listener needs to check a callback. */
export interface CallbackCheck {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  state: string;
}

/** Binds the first free candidate and waits for the one valid callback. */
export function listenForCallback(
  candidates: readonly string[],
  check: CallbackCheck,
): CallbackListener {
  const taken: string[] = [];
  for (const uri of candidates) {
    const listener = tryListen(new URL(uri), uri, check);
    if (listener) return listener;
    taken.push(new URL(uri).port);
  }
  const ports = taken.join(", ");
  throw new LoginFailedError(
    `Cannot listen for the sign-in callback: port ${ports} on loopback is in use (another login running?); ` +
      "stop the program using it, or set redirect_uri in the config to another registered loopback URL",
  );
}

function tryListen(target: URL, uri: string, check: CallbackCheck): CallbackListener | null {
  const port = Number(target.port);
  const host = target.hostname;
  const hosts = host === "localhost" ? ["127.0.0.1", "::1"] : [host.replace(/^\[|\]$/g, "")];
  const servers: Deno.HttpServer[] = [];
  let settle!: { resolve: (p: URLSearchParams) => void; reject: (e: Error) => void };
  const result = new Promise<URLSearchParams>((resolve, reject) => (settle = { resolve, reject }));
  let done = false;
  /** The start page, once {@linkcode CallbackListener.serveStart} was called. */
  const start: StartPage = { path: null, location: "", served: 0 };

  const close = async () => {
    done = true;
    await Promise.allSettled(servers.map((s) => s.shutdown()));
  };
  const finish = (outcome: { params: URLSearchParams } | { error: Error }) => {
    if (done) return;
    done = true;
    // Answer the browser first, then stop listening.
    setTimeout(() => void close(), 0);
    if ("params" in outcome) settle.resolve(outcome.params);
    else settle.reject(outcome.error);
  };
  const handler = (request: Request) => handle(request, target, check, start, () => done, finish);

  for (const [i, hostname] of hosts.entries()) {
    try {
      servers.push(Deno.serve({ hostname, port, onListen: () => {}, handler }));
    } catch (error) {
      const optionalV6 = i > 0 && !(error instanceof Deno.errors.AddrInUse);
      if (optionalV6) continue; // no IPv6 on this machine: 127.0.0.1 alone is fine
      for (const s of servers) void s.shutdown();
      if (error instanceof Deno.errors.AddrInUse) return null;
      throw new LoginFailedError(
        `Cannot listen on ${hostname}:${port} for the sign-in callback: ${
          (error as Error).message
        }`,
      );
    }
  }
  const serveStart = (authorizeUrl: string): string => {
    if (start.path !== null) throw new Error("serveStart called twice");
    const random = crypto.getRandomValues(new Uint8Array(32));
    start.path = START_PREFIX + base64url(random);
    start.location = authorizeUrl;
    return new URL(start.path, target).href;
  };
  return { redirectUri: uri, result, close, serveStart };
}

/** The one-time start page's state. */
interface StartPage {
  path: string | null;
  location: string;
  /** Requests answered so far. */
  served: number;
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

function handle(
  request: Request,
  target: URL,
  check: CallbackCheck,
  start: StartPage,
  isDone: () => boolean,
  finish: (outcome: { params: URLSearchParams } | { error: Error }) => void,
): Response {
  if (request.url.length > MAX_CALLBACK_URL) return page(414, "Request too long.");
  if (request.method !== "GET") return page(405, "Method not allowed.");
  const hostHeader = request.headers.get("host") ?? "";
  if (!isExpectedHost(hostHeader, target)) return page(400, "Unexpected Host header.");
  const url = new URL(request.url);
  if (start.path !== null && url.pathname === start.path) return startPage(start, isDone, finish);
  if (url.pathname !== target.pathname) return page(404, "Not found.");
  if (isDone()) return page(410, "This sign-in has already finished. You can close this tab.");

  let params: URLSearchParams;
  try {
    params = oauth.validateAuthResponse(check.as, check.client, url.searchParams, check.state);
  } catch (error) {
    if (error instanceof oauth.AuthorizationResponseError) {
      // A genuine error answer (its state matched): the user denied, or the server refused.
      finish({ error: new LoginFailedError(describeOAuthError(error.error, "sign-in")) });
      return page(400, "Sign-in failed. You can close this tab and return to the terminal.");
    }
    // Wrong or missing state, duplicate parameters: not our request. Keep waiting.
    return page(400, "This sign-in link is not the one agent-runner-auth is waiting for; ignored.");
  }
  const code = params.get("code");
  if (!code) return page(400, "The callback carries no authorization code; ignored.");
  finish({ params });
  return page(200, "Signed in to agent-runner-auth. You can close this tab.");
}

/**
 * The first request gets the redirect to the authorize URL. A second one while the sign-in
 * runs cancels it: the path was in the browser's argv, and one of the two requests was not
 * the browser's (a reload of a finished sign-in just gets 410).
 */
function startPage(
  start: StartPage,
  isDone: () => boolean,
  finish: (outcome: { params: URLSearchParams } | { error: Error }) => void,
): Response {
  if (isDone()) return page(410, "This sign-in has already finished. You can close this tab.");
  if (start.served++ === 0) {
    return new Response(null, {
      status: 302,
      headers: {
        location: start.location,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
      },
    });
  }
  finish({
    error: new LoginFailedError(
      "The sign-in page was requested twice (another program on this machine may have read " +
        "its address), so this sign-in was cancelled to be safe; run `agent-runner-auth login` " +
        "to try again",
    ),
  });
  return page(
    409,
    "This sign-in link was opened twice, so the sign-in was cancelled. " +
      "Return to the terminal and start again.",
  );
}

/** Host header must name the loopback host and port we bound (DNS-rebinding defence). */
function isExpectedHost(header: string, target: URL): boolean {
  const port = target.port;
  const allowed = target.hostname === "localhost"
    ? [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]
    : [`${target.hostname}:${port}`];
  return allowed.includes(header.toLowerCase());
}

function page(status: number, text: string): Response {
  const body =
    `<!doctype html><meta charset="utf-8"><title>agent-runner-auth</title><p>${text}</p>\n`;
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
    },
  });
}
