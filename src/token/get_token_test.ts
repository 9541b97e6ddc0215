/**
 * The `token` use case driven through fakes: a memory store, an in-process lock, a fake
 * clock and scripted grants. The same cases run for real, against gnome-keyring, the test
 * server and racing subprocesses, in `test/e2e_token_test.ts`.
 */
import assert from "node:assert/strict";
import {
  AuthError,
  LoginFailedError,
  LoginRequiredError,
  NetworkError,
  StoreError,
} from "../errors.ts";
import type { HeldLock, LockFile } from "../lock/lock.ts";
import { MemoryStore } from "../store/memory.ts";
import type { Interactivity } from "../term/interactive.ts";
import { DEFAULT_POLICY } from "./classify.ts";
import { getToken, type Grant, type TokenDeps } from "./get_token.ts";
import type { LoginState } from "./login_state.ts";
import { decodeAccess, decodeRefresh, encodeAccess, encodeRefresh } from "./record.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);
const ITEMS = { access: "agent-runner-access-token", refresh: "agent-runner-refresh-token" };
const interactive: Interactivity = {
  interactive: true,
  reason: "",
  terminal: "stdio",
  browser: { program: "b", args: [] },
};
const headless: Interactivity = {
  interactive: false,
  reason: "$CI is set",
  terminal: null,
  browser: null,
};

class FakeLock implements LockFile {
  held = false;
  acquisitions = 0;
  busyFor = 0; // acquire() reports a wait first when > 0
  tryAcquire(): HeldLock | null {
    if (this.held) return null;
    this.held = true;
    this.acquisitions++;
    return { release: () => (this.held = false) };
  }
  acquire(o: { timeoutMs: number; onWait?: () => void }): Promise<HeldLock> {
    if (this.busyFor > 0) o.onWait?.();
    const h = this.tryAcquire();
    return h ? Promise.resolve(h) : Promise.reject(new Error("held"));
  }
}

function grant(token: string, now: number, refreshToken?: string, lifetimeMin = 60): Grant {
  const g: Grant = {
    access: { token, obtainedAt: now, expiresAt: now + lifetimeMin * MIN, lifetimeKnown: true },
  };
  if (refreshToken) g.refreshToken = refreshToken;
  return g;
}

function setup(
  opts: { inter?: Interactivity; refresh?: TokenDeps["refresh"]; login?: TokenDeps["login"] } = {},
) {
  const store = new MemoryStore();
  const lock = new FakeLock();
  const warnings: string[] = [];
  const states: LoginState[] = [];
  const calls = { refresh: 0, login: 0, sleeps: [] as number[] };
  let now = T0;
  const deps: TokenDeps = {
    store,
    items: ITEMS,
    lock: () => lock,
    loginStatePath: "/nonexistent/login-state.json",
    writeLoginState: (s) => (states.push(s), Promise.resolve()),
    now: () => now,
    sleep: (ms) => (calls.sleeps.push(ms), Promise.resolve()),
    policy: DEFAULT_POLICY,
    warn: (l) => warnings.push(l),
    interactivity: () => opts.inter ?? headless,
    refresh: (
      rt,
    ) => (calls.refresh++,
      opts.refresh ? opts.refresh(rt) : Promise.resolve(grant("refreshed", now))),
    login: (
      i,
    ) => (calls.login++,
      opts.login ? opts.login(i) : Promise.resolve(grant("logged-in", now, "rt-login"))),
    lockTimeoutMs: 1000,
    cooldownMs: 60_000,
    pid: 4242,
  };
  const put = async (accessAgeMin: number | null, refreshToken: string | null) => {
    if (accessAgeMin !== null) {
      await store.set(
        ITEMS.access,
        encodeAccess({
          token: "stored-at",
          obtainedAt: T0 - accessAgeMin * MIN,
          expiresAt: T0 + (60 - accessAgeMin) * MIN,
          lifetimeKnown: true,
        }),
      );
    }
    if (refreshToken !== null) {
      await store.set(ITEMS.refresh, encodeRefresh({ token: refreshToken, obtainedAt: T0 - MIN }));
    }
  };
  const read = async () => ({
    access: await store.get(ITEMS.access).then((v) => (v ? decodeAccess(v, now) : null)),
    refresh: await store.get(ITEMS.refresh).then((v) => (v ? decodeRefresh(v) : null)),
  });
  return {
    store,
    lock,
    deps,
    warnings,
    states,
    calls,
    put,
    read,
    tick: (ms: number) => (now += ms),
  };
}

Deno.test("token: the store warms up before the lock, and only off the cached path", async () => {
  const s = setup();
  const order: string[] = [];
  s.deps.store.warmUp =
    () => (order.push(`warm-up (lock held: ${s.lock.held})`), Promise.resolve());
  const lock = s.deps.lock;
  s.deps.lock = () => (order.push("lock"), lock());
  await s.put(5, "rt");
  assert.equal(await getToken(s.deps), "stored-at");
  assert.deepEqual(order, [], "a cached token: no warm-up");
  s.tick(58 * MIN);
  assert.equal(await getToken(s.deps), "refreshed");
  assert.deepEqual(order, ["warm-up (lock held: false)", "lock"]);
});

Deno.test("token: cached path takes no lock and makes no request", async () => {
  const s = setup();
  await s.put(5, "rt");
  assert.equal(await getToken(s.deps), "stored-at");
  assert.equal(s.lock.acquisitions, 0);
  assert.equal(s.calls.refresh, 0);
});

Deno.test("token: stale access + refresh token -> one refresh under the lock, stored, printed", async () => {
  const s = setup();
  await s.put(58, "rt");
  assert.equal(await getToken(s.deps), "refreshed");
  assert.equal(s.calls.refresh, 1);
  assert.equal(s.lock.acquisitions, 1);
  const after = await s.read();
  assert.ok(after.access?.ok && after.access.record.token === "refreshed");
  assert.ok(
    after.refresh?.ok && after.refresh.record.token === "rt",
    "rotation off: old refresh token kept",
  );
});

Deno.test("token: rotation stores the new refresh token before the access token", async () => {
  const s = setup({ refresh: () => Promise.resolve(grant("a2", T0, "rt2")) });
  await s.put(61, "rt1");
  const order: string[] = [];
  const set = s.store.set.bind(s.store);
  s.store.set = (item, value) => (order.push(item), set(item, value));
  assert.equal(await getToken(s.deps), "a2");
  assert.deepEqual(order, [ITEMS.refresh, ITEMS.access]);
});

Deno.test("token: invalid_grant with our token still current -> both cleared, exit-1 error when headless", async () => {
  const s = setup({ refresh: () => Promise.reject(new AuthError("expired", "invalid_grant")) });
  await s.put(61, "rt");
  await assert.rejects(getToken(s.deps), LoginRequiredError);
  assert.equal(await s.store.get(ITEMS.refresh), null);
  assert.equal(await s.store.get(ITEMS.access), null);
});

Deno.test("token: invalid_grant after another process rotated -> retried with the new token", async () => {
  const seen: string[] = [];
  const s = setup({
    refresh: async (rt) => {
      seen.push(rt);
      if (rt === "old") {
        await s.store.set(ITEMS.refresh, encodeRefresh({ token: "new", obtainedAt: T0 }));
        throw new AuthError("expired", "invalid_grant");
      }
      return grant("via-new", T0);
    },
  });
  await s.put(61, "old");
  assert.equal(await getToken(s.deps), "via-new");
  assert.deepEqual(seen, ["old", "new"]);
});

Deno.test("token: invalid_grant when interactive -> tokens cleared, browser login", async () => {
  const s = setup({
    inter: interactive,
    refresh: () => Promise.reject(new AuthError("x", "invalid_grant")),
  });
  await s.put(61, "rt");
  assert.equal(await getToken(s.deps), "logged-in");
  assert.equal(s.calls.login, 1);
  assert.deepEqual(s.states.map((x) => x.status), ["in_progress", "succeeded"]);
});

Deno.test("token: server down with a still-valid token -> printed with a warning, tokens kept", async () => {
  const s = setup({
    refresh: () =>
      Promise.reject(new NetworkError("Cannot reach the token endpoint", { retryable: true })),
  });
  await s.put(56, "rt"); // 4 min left: not fresh, still usable
  assert.equal(await getToken(s.deps), "stored-at");
  assert.match(
    s.warnings.join("\n"),
    /Could not refresh the token \(Cannot reach the token endpoint\); printing the current one, valid for 4 more minutes/,
  );
  assert.equal(s.calls.refresh, 2, "one retry when a fallback exists");
  assert.ok(await s.store.get(ITEMS.refresh));
});

Deno.test("token: server down and the token expired -> network error, refresh token kept", async () => {
  const s = setup({ refresh: () => Promise.reject(new NetworkError("down", { retryable: true })) });
  await s.put(61, "rt");
  await assert.rejects(getToken(s.deps), NetworkError);
  assert.equal(s.calls.refresh, 3);
  assert.deepEqual(s.calls.sleeps, [250, 1000]);
  assert.ok(await s.store.get(ITEMS.refresh), "never drop a refresh token on a transport error");
});

Deno.test("token: 429 Retry-After is honoured up to the cap, longer ones are not waited for", async () => {
  let n = 0;
  const s = setup({
    refresh: () =>
      n++ === 0
        ? Promise.reject(new NetworkError("429", { retryable: true, retryAfterMs: 2000 }))
        : Promise.resolve(grant("ok", T0)),
  });
  await s.put(61, "rt");
  assert.equal(await getToken(s.deps), "ok");
  assert.deepEqual(s.calls.sleeps, [2000]);
  const t = setup({
    refresh: () =>
      Promise.reject(new NetworkError("429", { retryable: true, retryAfterMs: 60_000 })),
  });
  await t.put(61, "rt");
  await assert.rejects(getToken(t.deps), NetworkError);
  assert.equal(t.calls.refresh, 1);
});

Deno.test("token: a failed save is an error, the token is not printed", async () => {
  const s = setup();
  await s.put(61, "rt");
  s.store.set = () => Promise.reject(new StoreError("failed", "disk full"));
  await assert.rejects(getToken(s.deps), StoreError);
});

Deno.test("token: no tokens, headless -> LoginRequiredError naming the reason and `login`", async () => {
  const s = setup();
  const err = await getToken(s.deps).catch((e) => e);
  assert.ok(err instanceof LoginRequiredError);
  assert.match(
    err.message,
    /Not signed in, and cannot sign in here: \$CI is set; run `agent-runner-auth login`/,
  );
  assert.equal(s.calls.login, 0);
});

Deno.test("token: a failed login is recorded, and the cooldown stops the next browser", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = setup({
      inter: interactive,
      login: () => Promise.reject(new LoginFailedError("Sign-in timed out after 1 s")),
    });
    s.deps.loginStatePath = `${dir}/login-state.json`;
    s.deps.writeLoginState = (st) => Deno.writeTextFile(s.deps.loginStatePath, JSON.stringify(st));
    await assert.rejects(getToken(s.deps), LoginFailedError);
    assert.equal(JSON.parse(await Deno.readTextFile(s.deps.loginStatePath)).status, "abandoned");
    s.tick(10_000);
    const err = await getToken(s.deps).catch((e) => e);
    assert.ok(err instanceof LoginRequiredError);
    assert.match(err.message, /was abandoned 10 s ago, so none is opened for another 50 s/);
    assert.equal(s.calls.login, 1, "no second browser during the cooldown");
    s.tick(60_000);
    await assert.rejects(getToken(s.deps), LoginFailedError);
    assert.equal(s.calls.login, 2, "after the cooldown a login may start again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("token: a waiter behind a login that died (in_progress of another pid) opens no browser", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = setup({ inter: interactive });
    s.deps.loginStatePath = `${dir}/login-state.json`;
    await Deno.writeTextFile(
      s.deps.loginStatePath,
      JSON.stringify({ status: "in_progress", pid: 1, at: T0 }),
    );
    s.lock.busyFor = 1;
    const err = await getToken(s.deps).catch((e) => e);
    assert.ok(err instanceof LoginRequiredError, String(err));
    assert.match(
      err.message,
      /started by another agent-runner-auth process \(pid 1\) was abandoned/,
    );
    assert.match(
      s.warnings[0],
      /Waiting for another agent-runner-auth \(pid 1\) to finish the browser sign-in/,
    );
    assert.equal(s.calls.login, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("token: unreadable items are reported and treated as absent", async () => {
  const s = setup();
  await s.store.set(ITEMS.access, "{not json");
  await s.store.set(ITEMS.refresh, encodeRefresh({ token: "rt", obtainedAt: T0 }));
  assert.equal(await getToken(s.deps), "refreshed");
  assert.match(
    s.warnings[0],
    /Ignoring the unreadable item agent-runner-access-token \(not valid JSON\)/,
  );
});

Deno.test("issue 13 item 6: refresh after an abandoned login speaks of refreshing, not of a browser cooldown", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = setup();
    s.deps.loginStatePath = `${dir}/login-state.json`;
    await Deno.writeTextFile(
      s.deps.loginStatePath,
      JSON.stringify({ status: "abandoned", pid: 1, at: T0 - 10_000 }),
    );
    s.deps.strict = true;
    s.deps.signsIn = false;
    s.deps.interactivity = () => ({
      interactive: false,
      reason: "`refresh` only renews a stored sign-in",
      terminal: null,
      browser: null,
    });
    const err = await getToken(s.deps).catch((e) => e);
    assert.ok(err instanceof LoginRequiredError);
    assert.equal(
      err.message,
      "Not signed in, and cannot sign in here: `refresh` only renews a stored sign-in; run `agent-runner-auth login`",
    );
    assert.doesNotMatch(err.message, /browser|none is opened/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("issue 13 item 8: a refresh that names no one keeps the known user, else asks userinfo once", async () => {
  const lookups: (string | undefined)[] = [];
  const lookupUser = (_at: string, sub: string | undefined) => {
    lookups.push(sub);
    return Promise.resolve({ email: "u@example.com", sub });
  };
  // Nothing known, the ID token carries only `sub`: userinfo is asked, the user stored.
  const s = setup({
    refresh: () => {
      const g = grant("refreshed", T0);
      g.access.user = { sub: "sub-1" };
      return Promise.resolve(g);
    },
  });
  s.deps.lookupUser = lookupUser;
  await s.put(120, "rt");
  assert.equal(await getToken(s.deps), "refreshed");
  assert.deepEqual(lookups, ["sub-1"]);
  assert.deepEqual((await s.read()).access, {
    ok: true,
    record: {
      token: "refreshed",
      obtainedAt: T0,
      expiresAt: T0 + 60 * MIN,
      lifetimeKnown: true,
      user: { sub: "sub-1", email: "u@example.com" },
    },
  });

  // Known (stored with the access token) and no ID token: kept, userinfo not asked.
  const k = setup();
  k.deps.lookupUser = lookupUser;
  await k.store.set(
    ITEMS.access,
    encodeAccess({
      token: "old",
      obtainedAt: T0 - 120 * MIN,
      expiresAt: T0 - 60 * MIN,
      lifetimeKnown: true,
      user: { email: "known@example.com" },
    }),
  );
  await k.put(null, "rt");
  assert.equal(await getToken(k.deps), "refreshed");
  assert.equal(lookups.length, 1, "userinfo not asked when the user is known");
  const after = (await k.read()).access;
  assert.ok(after?.ok);
  assert.deepEqual(after.record.user, { email: "known@example.com" });
});

// ---- a token the API rejected (SPEC.md §1.6) ---------------------------------------------------

Deno.test("token: rejected fresh token -> one refresh under the lock, the new token printed", async () => {
  const s = setup();
  await s.put(5, "rt");
  assert.equal(await getToken({ ...s.deps, rejected: "stored-at" }), "refreshed");
  assert.equal(s.calls.refresh, 1);
  assert.equal(s.lock.acquisitions, 1);
});

Deno.test("token: rejected token already replaced by another process -> printed, no request", async () => {
  const s = setup();
  await s.put(5, "rt");
  assert.equal(await getToken({ ...s.deps, rejected: "some-older-token" }), "stored-at");
  assert.equal(s.calls.refresh, 0);
});

Deno.test("token: rejected token and no refresh token -> one line naming login", async () => {
  const s = setup();
  await s.put(5, null);
  await assert.rejects(
    getToken({ ...s.deps, rejected: "stored-at" }),
    (e: Error) =>
      e instanceof LoginRequiredError && /rejected the token and there is no refresh token/.test(
        e.message,
      ) && /agent-runner-auth login/.test(e.message),
  );
});

Deno.test("token: rejected token and the refresh fails -> an error, never the rejected token", async () => {
  const s = setup({
    refresh: () => Promise.reject(new NetworkError("auth domain unreachable", { retryable: true })),
  });
  await s.put(5, "rt");
  await assert.rejects(
    getToken({ ...s.deps, rejected: "stored-at" }),
    (e: Error) =>
      /^The API rejected the token and getting a new one failed: auth domain/.test(e.message),
  );
  assert.equal(s.calls.refresh, 3, "the bounded retry of a refresh without fallback");
  assert.deepEqual(s.warnings, [], "no 'printing the current token' fallback");
});

Deno.test("token: rejected token, invalid_grant -> tokens removed, the usual login rule", async () => {
  const s = setup({ refresh: () => Promise.reject(new AuthError("expired", "invalid_grant")) });
  await s.put(5, "rt");
  await assert.rejects(getToken({ ...s.deps, rejected: "stored-at" }), LoginRequiredError);
  assert.equal(await s.store.get(ITEMS.access), null);
});

Deno.test("token: a refresh that got no answer, then invalid_grant (rotation burnt it) -> the line says so (issue 11 #8)", async () => {
  let n = 0;
  const s = setup({
    refresh: () =>
      n++ === 0
        ? Promise.reject(
          new NetworkError("The token endpoint did not answer within 2000 ms", { retryable: true }),
        )
        : Promise.reject(new AuthError("expired", "invalid_grant")),
  });
  await s.put(61, "rt");
  await assert.rejects(
    getToken(s.deps),
    (e: Error) =>
      e instanceof LoginRequiredError &&
      /^The sign-in session ended: a refresh got no answer in time .*RetryGracePeriodSeconds.*\(stored tokens removed\), and cannot sign in here: \$CI is set/
        .test(e.message),
  );
  assert.equal(await s.store.get(ITEMS.refresh), null);
});

Deno.test("token: a pinned-issuer mismatch is never answered with the still-valid old token (issue 11 #3)", async () => {
  const s = setup({
    refresh: () => Promise.reject(new AuthError("not the pinned issuer", "issuer_mismatch")),
  });
  await s.put(56, "rt"); // 4 min left: usable as a fallback for any other failure
  await assert.rejects(getToken(s.deps), AuthError);
  assert.equal(s.calls.refresh, 1);
  assert.ok(await s.store.get(ITEMS.refresh), "tokens kept");
  assert.ok(await s.store.get(ITEMS.access), "tokens kept");
});

Deno.test("token: a fresh login grant whose save timed out is kept in memory and saved on the one retry, then printed (issue 11 #7)", async () => {
  const s = setup({ inter: interactive });
  s.store.failNext("set", new StoreError("timeout", "No answer to the macOS Keychain dialog"));
  assert.equal(await getToken(s.deps), "logged-in");
  assert.equal(s.calls.login, 1, "one sign-in, not two");
  assert.ok(await s.store.get(ITEMS.refresh), "saved on the retry");
  assert.ok(await s.store.get(ITEMS.access));
});

Deno.test("token: a fresh login grant whose save timed out twice is not printed; one line says the sign-in must be repeated (issue 11 #7)", async () => {
  const s = setup({ inter: interactive });
  for (let i = 0; i < 2; i++) {
    s.store.failNext("set", new StoreError("timeout", "No answer to the macOS Keychain dialog"));
  }
  await assert.rejects(
    getToken(s.deps),
    (e: Error) =>
      e instanceof StoreError && e.failure === "timeout" &&
      /^The new tokens could not be saved, twice \(No answer to the macOS Keychain dialog\); the sign-in must be repeated: run `agent-runner-auth login`$/
        .test(e.message),
  );
});

Deno.test("token: a save that failed for another reason than a timeout is not retried", async () => {
  const s = setup({ inter: interactive });
  s.store.failNext("set", new StoreError("locked", "locked"));
  await assert.rejects(getToken(s.deps), StoreError);
  assert.equal(s.store.calls.filter((c) => c.op === "set").length, 1);
});

Deno.test("token: a logout while this call was under way means no browser, one line (issue 11 #1)", async () => {
  const s = setup({ inter: interactive });
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, JSON.stringify({ status: "signed_out", pid: 4242, at: T0 }));
    s.deps.loginStatePath = path;
    await assert.rejects(
      getToken(s.deps),
      (e: Error) =>
        e instanceof LoginRequiredError &&
        /Signed out by `agent-runner-auth logout` \(pid 4242\)/.test(e.message),
    );
    assert.equal(s.calls.login, 0);
  } finally {
    await Deno.remove(path);
  }
});
