/**
 * The `token` use case (SPEC.md §1): read, decide, and when needed lock, re-read, refresh or
 * log in, save, and hand back the one token to print.
 *
 *     read the store without the lock (cached callers never wait for each other)
 *       fresh access token                        -> done
 *     take the exclusive lock (say once what we wait for; bounded)
 *     read the store again: another process may have refreshed or logged in meanwhile
 *       fresh                                     -> done, no request
 *       refresh token                             -> refresh grant (bounded retries)
 *           ok                                    -> save refresh token, then access token
 *           invalid_grant                         -> if the stored refresh token changed, start
 *                                                    over with it; else delete both, go on to login
 *           transport/5xx/429, access still valid -> print it with a warning, keep every token
 *       no refresh token                          -> login when interactive and no recent failed
 *                                                    login, else fail (exit 1) naming `login`
 *
 * Every dependency comes in through {@linkcode TokenDeps}, so the unit tests drive this with
 * a memory store, a fake lock, a fake clock and scripted grants; only `src/cli/token.ts`
 * builds the real ones.
 *
 * @module
 */

import {
  AppError,
  AuthError,
  LockTimeoutError,
  LoginRequiredError,
  NetworkError,
  StoreError,
} from "../errors.ts";
import type { LockFile } from "../lock/lock.ts";
import type { TokenStore } from "../store/store.ts";
import type { Interactivity } from "../term/interactive.ts";
import { classify, type Decision, type FreshnessPolicy, isFresh, type Stored } from "./classify.ts";
import { type LoginState, readLoginState } from "./login_state.ts";
import {
  type AccessRecord,
  decodeAccess,
  decodeRefresh,
  encodeAccess,
  encodeRefresh,
  type UserInfo,
} from "./record.ts";

/** A successful grant, as the OAuth layer returns it. */
export interface Grant {
  access: AccessRecord;
  refreshToken?: string;
}

/** Everything `token` touches. */
export interface TokenDeps {
  store: TokenStore;
  items: { access: string; refresh: string };
  /** Opened only off the cached path (it loads libc through FFI). */
  lock: () => LockFile | Promise<LockFile>;
  loginStatePath: string;
  writeLoginState: (state: LoginState) => Promise<void>;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  policy: FreshnessPolicy;
  /** One-line warnings that go with the outcome (shown with a printed token). */
  warn: (line: string) => void;
  /** Progress the user needs at once ("waiting for …"); defaults to `warn`. */
  notify?: (line: string) => void;
  interactivity: () => Interactivity | Promise<Interactivity>;
  /** One refresh-grant attempt; throws AuthError / NetworkError (retryable or not). */
  refresh: (refreshToken: string) => Promise<Grant>;
  /** A whole browser login; throws LoginFailedError. */
  login: (interactivity: Interactivity) => Promise<Grant>;
  lockTimeoutMs: number;
  /** `refresh --force`: refresh even when the cached token is fresh. */
  force?: boolean;
  /** `refresh`: a failed refresh is an error, never answered with the still-valid old token. */
  strict?: boolean;
  /**
   * A token the API just rejected (SPEC.md §1.6, `last_print.ts`): if the store still holds
   * it, refresh under the lock whatever its expiry, and never print it again; if another
   * process replaced it meanwhile, print that one without a request.
   */
  rejected?: string;
  /** After a failed or abandoned login, `token` opens no browser for this long. */
  cooldownMs: number;
  /**
   * `false` for a verb that never signs in (`refresh`): its failure then says what it needs,
   * never that a browser is held back by the cooldown (issue 13 item 6).
   */
  signsIn?: boolean;
  /**
   * Asks the auth server who an access token belongs to (`/oauth2/userInfo`), for a refresh
   * that names no one when nothing is known; `undefined` when it cannot tell. Never throws.
   */
  lookupUser?: (accessToken: string, sub: string | undefined) => Promise<UserInfo | undefined>;
  pid: number;
}

/** Back-off between refresh attempts when the server gave no `Retry-After`. */
export const RETRY_DELAYS_MS = [250, 1000];
/** A `Retry-After` longer than this is not waited for (Claude shows "slow helper" at 10 s). */
export const MAX_RETRY_WAIT_MS = 5000;

/** Returns the access token to print. Throws an {@linkcode AppError} otherwise. */
export async function getToken(deps: TokenDeps): Promise<string> {
  // An unreadable item is read twice (without, then under the lock): report it once.
  const d: TokenDeps = { ...deps, warn: onceEach(deps.warn) };
  const callStart = d.now();
  // The cached path reads one item: the refresh token is only needed when this one is stale.
  const access = await readAccess(d);
  if (
    !d.force && access && isFresh(access, d.now(), d.policy) && access.token !== d.rejected
  ) return access.token;

  // Off the cached path: the store's costly first calls happen before the lock, side by side,
  // and while the lock's own module loads.
  const warming = d.store.warmUp?.();
  const lockFile = await d.lock();
  await warming;
  const waitStart = d.now();
  let waited = false;
  /** The login record as it was when we began waiting: the login we are waiting behind. */
  let seen: LoginState | null = null;
  let held;
  try {
    held = await lockFile.acquire({
      timeoutMs: d.lockTimeoutMs,
      onWait: () => {
        waited = true;
        seen = readLoginState(d.loginStatePath);
        (d.notify ?? d.warn)(waitingMessage(seen, d.pid));
      },
    });
  } catch (error) {
    if (error instanceof LockTimeoutError) {
      const again = classify(await readStored(d), d.now(), d.policy);
      const usable = again.kind === "cached" ? again.access : again.fallback;
      if (usable && !d.strict && usable.token !== d.rejected) {
        d.warn(`${error.message}; printing the current token, ${validFor(usable, d.now())}`);
        return usable.token;
      }
    }
    throw error;
  }
  try {
    return await underLock(d, waited, waitStart, seen, callStart);
  } finally {
    held.release();
  }
}

async function underLock(
  d: TokenDeps,
  waited: boolean,
  waitStart: number,
  seen: LoginState | null,
  callStart: number,
): Promise<string> {
  // A refresh token that another process rotates under us is re-read once or twice at most.
  for (let round = 0; round < 3; round++) {
    const stored = await readStored(d);
    let decision: Decision = classify(stored, d.now(), d.policy);
    if (d.force && round === 0 && decision.kind === "cached" && stored.refresh) {
      decision = { kind: "refresh", refresh: stored.refresh, fallback: decision.access };
    }
    if (d.rejected !== undefined) decision = notRejected(decision, stored, d.rejected);
    if (decision.kind === "cached") return decision.access.token;
    if (decision.kind === "login") {
      return await loginOrFail(
        d,
        stored,
        decision.fallback,
        waited,
        waitStart,
        seen,
        "Not signed in",
        callStart,
      );
    }

    let grant: Grant;
    /** An earlier attempt got no answer: the server may have carried it out anyway. */
    let unanswered = false;
    try {
      grant = await refreshWithRetry(
        d,
        decision.refresh.token,
        decision.fallback !== null,
        () => unanswered = true,
      );
    } catch (error) {
      if (error instanceof AuthError && error.oauthError === "invalid_grant") {
        const current = await readRefresh(d);
        if (current && current.token !== decision.refresh.token) continue; // rotated meanwhile
        await d.store.delete(d.items.refresh);
        await d.store.delete(d.items.access);
        // No separate warning: a failing helper's stderr must stay one line (SPEC.md §1.1).
        return await loginOrFail(
          d,
          { access: null, refresh: null },
          null,
          waited,
          waitStart,
          seen,
          unanswered
            ? LOST_REPLY
            : "The sign-in session expired or was revoked (stored tokens removed)",
          callStart,
        );
      }
      if (d.rejected !== undefined && error instanceof AppError) {
        throw new AppError(
          error.code,
          `The API rejected the token and getting a new one failed: ${error.message}`,
        );
      }
      // A pinned-issuer mismatch (`src/oauth/client.ts`) is a security refusal, not an outage:
      // it is reported, never papered over with the old token (issue 11 #3).
      const refused = error instanceof AuthError && error.oauthError === "issuer_mismatch";
      if (decision.fallback && !d.strict && !(error instanceof StoreError) && !refused) {
        d.warn(
          `Could not refresh the token (${messageOf(error)}); printing the current one, ${
            validFor(decision.fallback, d.now())
          }`,
        );
        return decision.fallback.token;
      }
      throw error;
    }
    await knowUser(d, grant, decision.fallback?.user ?? stored.access?.user);
    await save(d, grant);
    return grant.access.token;
  }
  throw new AuthError("The refresh token kept changing under us; run `agent-runner-auth login`");
}

/** A user named by an email or a username (what `status` shows). */
function names(user: UserInfo | undefined): boolean {
  return Boolean(user?.email || user?.username);
}

/**
 * Keeps the user known across a refresh: Cognito omits the user when no ID token comes back,
 * and a provider that keeps profile claims in userinfo sends an ID token with `sub` only. So a
 * grant that names no one takes what we knew (same `sub`), and when nothing is known asks
 * userinfo once (issue 13 item 8).
 */
async function knowUser(d: TokenDeps, grant: Grant, known: UserInfo | undefined): Promise<void> {
  if (names(grant.access.user)) return;
  const sub = grant.access.user?.sub;
  if (names(known) && (!sub || !known!.sub || known!.sub === sub)) {
    grant.access.user = { ...known, ...grant.access.user };
    return;
  }
  const found = await d.lookupUser?.(grant.access.token, sub);
  if (found) grant.access.user = { ...grant.access.user, ...found };
  else if (!grant.access.user && known) grant.access.user = known;
}

/**
 * The decision once the API rejected `rejected`: that token is refreshed away even when fresh,
 * and never kept as the fallback printed when the server cannot be reached.
 */
function notRejected(decision: Decision, stored: Stored, rejected: string): Decision {
  if (decision.kind === "cached") {
    if (decision.access.token !== rejected) return decision;
    if (!stored.refresh) {
      throw new LoginRequiredError(
        "The API rejected the token and there is no refresh token to get another; run `agent-runner-auth login`",
      );
    }
    return { kind: "refresh", refresh: stored.refresh, fallback: null };
  }
  return decision.fallback?.token === rejected ? { ...decision, fallback: null } : decision;
}

async function loginOrFail(
  d: TokenDeps,
  stored: Stored,
  fallback: AccessRecord | null,
  waited: boolean,
  waitStart: number,
  seen: LoginState | null,
  why: string,
  callStart: number,
): Promise<string> {
  if (!stored.access && !stored.refresh) await d.store.assertUsable?.();
  const last = readLoginState(d.loginStatePath);
  const now = d.now();
  // `logout` ran while this call was under way (it read the store before, or waited on the
  // lock behind it): the user just signed out, so no browser opens to sign straight back in.
  if (last?.status === "signed_out" && last.at >= callStart) {
    throw new LoginRequiredError(
      `Signed out by \`agent-runner-auth logout\` (pid ${last.pid}) while this call was under ` +
        "way; run `agent-runner-auth login` to sign in again",
    );
  }
  const lastFailed = last && (last.status === "failed" || last.status === "abandoned" ||
    (last.status === "in_progress" && last.pid !== d.pid));
  if (d.signsIn !== false && last && lastFailed) {
    const how = last.status === "failed" ? "failed" : "was abandoned";
    // We waited behind this login if its outcome was written during our wait, or if it is the
    // very `in_progress` record we saw when we began waiting: its process died holding the lock
    // (SIGKILL, a closed terminal), however long ago that login started (no tab storms).
    const behindIt = waited && (last.at >= waitStart - 1000 ||
      (seen?.status === "in_progress" && seen.pid === last.pid && seen.at === last.at));
    if (behindIt) {
      throw new LoginRequiredError(
        `The browser sign-in started by another agent-runner-auth process (pid ${last.pid}) ${how}; run \`agent-runner-auth login\``,
      );
    }
    if (now - last.at < d.cooldownMs) {
      const left = Math.ceil((d.cooldownMs - (now - last.at)) / 1000);
      throw new LoginRequiredError(
        `A browser sign-in ${how} ${
          Math.round((now - last.at) / 1000)
        } s ago, so none is opened for another ${left} s; run \`agent-runner-auth login\``,
      );
    }
  }
  const inter = await d.interactivity();
  if (!inter.interactive) {
    if (fallback && !d.strict) {
      d.warn(
        `${why} for long enough (${inter.reason}); printing the current token, ${
          validFor(fallback, now)
        }; run \`agent-runner-auth login\``,
      );
      return fallback.token;
    }
    throw new LoginRequiredError(
      `${why}, and cannot sign in here: ${inter.reason}; run \`agent-runner-auth login\``,
    );
  }
  await d.writeLoginState({ status: "in_progress", pid: d.pid, at: d.now() });
  let grant: Grant;
  try {
    grant = await d.login(inter);
  } catch (error) {
    const abandoned = error instanceof AppError && /timed out/i.test(error.message);
    await d.writeLoginState({
      status: abandoned ? "abandoned" : "failed",
      pid: d.pid,
      at: d.now(),
    });
    throw error;
  }
  await save(d, grant);
  await d.writeLoginState({ status: "succeeded", pid: d.pid, at: d.now() });
  return grant.access.token;
}

/**
 * Refresh token first, then access token (SPEC.md §4): a crash between the two writes leaves
 * the new refresh token and an old access token, and the next call simply refreshes again.
 * A failed save is an error: an unsaved token is never printed (SPEC.md §1.5).
 *
 * A save that timed out is tried once more with the grant still in memory (issue 11 #7): a
 * Keychain dialog left open, a keyring slow under load. A fresh login, or a refresh whose
 * server already replaced the refresh token, exists nowhere else, so losing it to one slow
 * call would force a new sign-in. If the second try fails too, one line says what is lost.
 */
export async function save(d: Pick<TokenDeps, "store" | "items">, grant: Grant): Promise<void> {
  try {
    await writeGrant(d, grant);
  } catch (error) {
    if (!(error instanceof StoreError && error.failure === "timeout")) throw error;
    try {
      await writeGrant(d, grant);
    } catch (again) {
      if (!(again instanceof StoreError)) throw again;
      const next = grant.refreshToken
        ? "the sign-in must be repeated: run `agent-runner-auth login`"
        : "the next call refreshes again";
      throw new StoreError(
        again.failure,
        `The new tokens could not be saved, twice (${again.message}); ${next}`,
        { cause: again },
      );
    }
  }
}

async function writeGrant(d: Pick<TokenDeps, "store" | "items">, grant: Grant): Promise<void> {
  if (grant.refreshToken) {
    await d.store.set(
      d.items.refresh,
      encodeRefresh({ token: grant.refreshToken, obtainedAt: grant.access.obtainedAt }),
    );
  }
  await d.store.set(d.items.access, encodeAccess(grant.access));
}

/**
 * Why the session ended when a refresh got no answer and its retry then got `invalid_grant`:
 * with refresh-token rotation on and no grace period, the server had carried out the first
 * attempt and replaced the token whose answer never reached us (issue 11 #8).
 */
export const LOST_REPLY = "The sign-in session ended: a refresh got no answer in time and the " +
  "server then refused the same refresh token, most likely replaced by that refresh " +
  "(refresh-token rotation: set RetryGracePeriodSeconds above 0 on the app client) " +
  "(stored tokens removed)";

async function refreshWithRetry(
  d: TokenDeps,
  token: string,
  hasFallback: boolean,
  onRetry: () => void,
): Promise<Grant> {
  const attempts = hasFallback ? 2 : 1 + RETRY_DELAYS_MS.length;
  for (let attempt = 1;; attempt++) {
    try {
      return await d.refresh(token);
    } catch (error) {
      if (!(error instanceof NetworkError) || !error.retryable || attempt >= attempts) throw error;
      onRetry();
      const wait = error.retryAfterMs ?? RETRY_DELAYS_MS[attempt - 1];
      if (wait > MAX_RETRY_WAIT_MS) throw error;
      await d.sleep(wait);
    }
  }
}

/** Reads and decodes both items; unreadable items are reported and treated as absent. */
export async function readStored(
  d: Pick<TokenDeps, "store" | "items" | "now" | "warn">,
): Promise<Stored> {
  return { access: await readAccess(d), refresh: await readRefresh(d) };
}

async function readAccess(d: Pick<TokenDeps, "store" | "items" | "now" | "warn">) {
  const raw = await d.store.get(d.items.access);
  if (raw === null) return null;
  const decoded = decodeAccess(raw, d.now());
  if (decoded.ok) return decoded.record;
  d.warn(`Ignoring the unreadable item ${d.items.access} (${decoded.reason})`);
  return null;
}

async function readRefresh(d: Pick<TokenDeps, "store" | "items" | "warn">) {
  const raw = await d.store.get(d.items.refresh);
  if (raw === null) return null;
  const decoded = decodeRefresh(raw);
  if (decoded.ok) return decoded.record;
  d.warn(`Ignoring the unreadable item ${d.items.refresh} (${decoded.reason})`);
  return null;
}

function waitingMessage(state: LoginState | null, pid: number): string {
  if (state?.status === "in_progress" && state.pid !== pid) {
    return `Waiting for another agent-runner-auth (pid ${state.pid}) to finish the browser sign-in…`;
  }
  return "Waiting for another agent-runner-auth to finish refreshing the token…";
}

function validFor(access: AccessRecord, now: number): string {
  const minutes = Math.max(0, Math.floor((access.expiresAt - now) / 60_000));
  return `valid for ${minutes} more minute${minutes === 1 ? "" : "s"}`;
}

function onceEach(warn: (line: string) => void): (line: string) => void {
  const said = new Set<string>();
  return (line) => {
    if (said.has(line)) return;
    said.add(line);
    warn(line);
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
