/**
 * A stand-in for the user's browser, used as `$BROWSER` by end-to-end tests: the CLI runs it with one
 * argument (SPEC 1.3), the one-time start page of its loopback listener, which redirects to the
 * authorize URL (an authorize URL given directly works too). It loads the start page, asks the
 * authorization server, which auto-approves, and delivers the redirect to the CLI's listener.
 *
 * Nothing is ever written to stdout: the CLI that launches it may use its own stdout as a protocol
 * (SPEC 1.1); diagnostics go to stderr.
 *
 * Environment switches (the command line stays exactly "browser <url>", like a real browser):
 * - `TEST_BROWSER_MODE`: `follow` (default) | `abandon` (the user closed the tab: do nothing) |
 *   `deny` (skip the server, call the redirect URI with `?error=access_denied&state=<state>`) |
 *   `wrong-state` (deliver the callback with a tampered `state` first, then the real one).
 * - `TEST_BROWSER_DELAY_MS`: wait this long before acting.
 * - `TEST_BROWSER_LOG`: append one JSON line per invocation, to count browser launches.
 * - `TEST_BROWSER_TIMEOUT_MS`: per-request timeout (default 10,000).
 *
 * Needs `--allow-net` (loopback), and `--allow-write` for the log, `--allow-env` for the switches.
 *
 * @module
 */

/** What the browser does with the authorize URL. */
export type BrowserMode = "follow" | "abandon" | "deny" | "wrong-state";

const MODES: readonly BrowserMode[] = ["follow", "abandon", "deny", "wrong-state"];

/** Options of {@linkcode followAuthorize}. */
export interface FollowOptions {
  /** Default `follow`. */
  mode?: BrowserMode;
  /** Wait before acting. */
  delayMs?: number;
  /** Append one JSON line describing this invocation to this file. */
  logPath?: string;
  /** Timeout of each HTTP request; default 10,000 ms. */
  timeoutMs?: number;
}

/** What happened; `callbackUrl` is absent when the mode was `abandon`. */
export interface FollowResult {
  mode: BrowserMode;
  /** The authorize URL the start page redirected to (absent when given an authorize URL). */
  authorizeUrl?: string;
  /** The URL the browser delivered to the loopback listener (the real one, in `wrong-state`). */
  callbackUrl?: string;
  /** HTTP status the listener answered the callback with (always 2xx on success). */
  callbackStatus?: number;
  /** `wrong-state` only: the status answered to the tampered callback (undefined: no answer). */
  tamperedStatus?: number;
}

/** A failure a real user would see in the browser: an error page, a non-loopback redirect... */
export class BrowserError extends Error {
  override name = "BrowserError";
}

/**
 * Act as the browser for one authorize URL. Resolves when the loopback listener answered 2xx;
 * throws {@linkcode BrowserError} otherwise.
 */
export async function followAuthorize(
  url: string,
  options: FollowOptions = {},
): Promise<FollowResult> {
  const mode = options.mode ?? "follow";
  const timeoutMs = options.timeoutMs ?? 10_000;
  let given: URL;
  try {
    given = new URL(url);
  } catch {
    throw new BrowserError(`not a URL: ${url}`);
  }
  if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
  // The CLI's start page (loopback, `/start/…`): loading it is what opening the browser does.
  const isStart = _isLoopback(given) && given.pathname.startsWith("/start/");
  const started = isStart ? await _start(given, timeoutMs) : null;
  const authorize = started ?? given;
  if (options.logPath) await _log(options.logPath, mode, authorize);
  const via = started ? { authorizeUrl: authorize.href } : {};
  if (mode === "abandon") return { mode, ...via };

  if (mode === "deny") {
    // What Cognito sends when the user cancels: the error goes to the validated redirect URI.
    const redirectUri = authorize.searchParams.get("redirect_uri");
    if (!redirectUri) throw new BrowserError("authorize URL has no redirect_uri");
    const callback = _loopback(redirectUri);
    callback.searchParams.set("error", "access_denied");
    const state = authorize.searchParams.get("state");
    if (state !== null) callback.searchParams.set("state", state);
    return { mode, ...via, ...(await _deliver(callback, timeoutMs)) };
  }

  const callback = await _authorize(authorize, timeoutMs);
  let tamperedStatus: number | undefined;
  if (mode === "wrong-state") {
    const tampered = new URL(callback);
    const state = tampered.searchParams.get("state") ?? "";
    tampered.searchParams.set("state", `${state}tampered`);
    // The listener may ignore a wrong state without answering; don't let that stall the real one.
    tamperedStatus = await _get(tampered, Math.min(timeoutMs, 2_000))
      .then((r) => r.status)
      .catch(() => undefined);
  }
  const delivered = await _deliver(callback, timeoutMs);
  return {
    mode,
    ...via,
    ...delivered,
    ...(tamperedStatus === undefined ? {} : { tamperedStatus }),
  };
}

/** Loads the CLI's start page; it must redirect (302) to an http(s) authorize URL elsewhere. */
async function _start(start: URL, timeoutMs: number): Promise<URL> {
  let response: Response;
  try {
    response = await _get(start, timeoutMs);
  } catch (error) {
    throw new BrowserError(`start page request failed: ${(error as Error).message}`);
  }
  const location = response.headers.get("location");
  if (response.status !== 302 || !location) {
    throw new BrowserError(`start page answered HTTP ${response.status} without a redirect`);
  }
  const target = new URL(location, start);
  if (!/^https?:$/.test(target.protocol) || target.origin === start.origin) {
    throw new BrowserError(
      `start page redirected to ${target.origin}, not an authorization server`,
    );
  }
  return target;
}

/** GET the authorize URL without following; return the loopback redirect target. */
async function _authorize(authorize: URL, timeoutMs: number): Promise<URL> {
  let response: Response;
  try {
    response = await _get(authorize, timeoutMs);
  } catch (error) {
    throw new BrowserError(`authorize request failed: ${(error as Error).message}`);
  }
  const location = response.headers.get("location");
  if (response.status < 300 || response.status > 399 || !location) {
    throw new BrowserError(`authorize answered HTTP ${response.status} without a redirect`);
  }
  const target = new URL(location, authorize);
  // Cognito shows its own error page (`/error?error=...`) on the login domain for a bad client_id
  // or redirect_uri; that never reaches the listener (research B.3).
  if (target.origin === authorize.origin) {
    throw new BrowserError(`authorization server showed an error page: ${target.href}`);
  }
  return _loopback(target.href);
}

/** The callback must go to a loopback listener: `http://127.x.y.z|localhost|[::1]:PORT/...`. */
function _loopback(href: string): URL {
  let target: URL;
  try {
    target = new URL(href);
  } catch {
    throw new BrowserError(`redirect is not a URL: ${href}`);
  }
  if (!_isLoopback(target)) {
    throw new BrowserError(`redirect is not a loopback http URL with a port: ${target.href}`);
  }
  return target;
}

/** `http://127.x.y.z|localhost|[::1]:PORT/...` */
function _isLoopback(url: URL): boolean {
  const loopbackHost = ["localhost", "[::1]"].includes(url.hostname) ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(url.hostname);
  return url.protocol === "http:" && loopbackHost && url.port !== "";
}

async function _deliver(
  callback: URL,
  timeoutMs: number,
): Promise<{ callbackUrl: string; callbackStatus: number }> {
  let response: Response;
  try {
    response = await _get(callback, timeoutMs);
  } catch (error) {
    throw new BrowserError(`callback request failed: ${(error as Error).message}`);
  }
  if (response.status < 200 || response.status > 299) {
    throw new BrowserError(`callback answered HTTP ${response.status}: ${callback.origin}`);
  }
  return { callbackUrl: callback.href, callbackStatus: response.status };
}

/** One GET, never following redirects, body drained, bounded by `timeoutMs`. */
async function _get(url: URL, timeoutMs: number): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    const response = await fetch(url, { redirect: "manual", signal: controller.signal });
    await response.body?.cancel();
    return response;
  } catch (error) {
    throw controller.signal.aborted ? controller.signal.reason : error;
  } finally {
    clearTimeout(timer);
  }
}

async function _log(path: string, mode: BrowserMode, authorize: URL): Promise<void> {
  const q = authorize.searchParams;
  const line = JSON.stringify({
    time: new Date().toISOString(),
    pid: Deno.pid,
    mode,
    client_id: q.get("client_id"),
    redirect_uri: q.get("redirect_uri"),
    has_state: q.has("state"),
  });
  // One short O_APPEND write per launch, so parallel launches don't interleave.
  await Deno.writeTextFile(path, line + "\n", { append: true });
}

/** Options from the `TEST_BROWSER_*` environment variables. */
export function optionsFromEnv(env: (name: string) => string | undefined): FollowOptions {
  const mode = env("TEST_BROWSER_MODE") || "follow";
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new BrowserError(`unknown TEST_BROWSER_MODE: ${mode}`);
  }
  const number = (name: string): number | undefined => {
    const raw = env(name);
    if (!raw) return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new BrowserError(`${name} is not a number: ${raw}`);
    return n;
  };
  return {
    mode: mode as BrowserMode,
    delayMs: number("TEST_BROWSER_DELAY_MS"),
    timeoutMs: number("TEST_BROWSER_TIMEOUT_MS"),
    logPath: env("TEST_BROWSER_LOG") || undefined,
  };
}

async function _main(args: string[]): Promise<number> {
  if (args.length !== 1) {
    console.error("test browser: usage: browser <authorize-url>");
    return 2;
  }
  try {
    await followAuthorize(args[0], optionsFromEnv((name) => Deno.env.get(name)));
    return 0;
  } catch (error) {
    console.error(`test browser: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await _main(Deno.args));
