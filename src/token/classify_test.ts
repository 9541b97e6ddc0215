import assert from "node:assert/strict";
import {
  classify,
  DEFAULT_POLICY,
  type FreshnessPolicy,
  isFresh,
  policyFromEnv,
  requiredRemainingMs,
} from "./classify.ts";
import type { AccessRecord, RefreshRecord } from "./record.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);
const connectPagePolicy: FreshnessPolicy = { ...DEFAULT_POLICY, helperTtlMs: 55 * MIN };

/** An access token obtained `ageMin` minutes before T0 with a `lifetimeMin` lifetime. */
function access(ageMin: number, lifetimeMin = 60): AccessRecord {
  const obtainedAt = T0 - ageMin * MIN;
  return {
    token: "at",
    obtainedAt,
    expiresAt: obtainedAt + lifetimeMin * MIN,
    lifetimeKnown: true,
  };
}
const refresh: RefreshRecord = { token: "rt", obtainedAt: T0 - 10 * MIN };

Deno.test("classify: the token decision table (fake clock)", async (t) => {
  const cases: {
    name: string;
    access: AccessRecord | null;
    refresh: RefreshRecord | null;
    policy?: FreshnessPolicy;
    now?: number;
    want: "cached" | "refresh" | "login";
    fallback?: boolean;
  }[] = [
    {
      name: "no tokens at all -> login",
      access: null,
      refresh: null,
      want: "login",
      fallback: false,
    },
    {
      name: "fresh access, default 5 min TTL -> cached",
      access: access(10),
      refresh,
      want: "cached",
    },
    {
      name: "fresh access without refresh token -> cached",
      access: access(10),
      refresh: null,
      want: "cached",
    },
    {
      name: "54 min old, default TTL: 6 min left is enough -> cached",
      access: access(54),
      refresh,
      want: "cached",
    },
    {
      name: "55 min old, default TTL: 5 min left < 6 -> refresh",
      access: access(55),
      refresh,
      want: "refresh",
      fallback: true,
    },
    {
      name: "expired access + refresh -> refresh without fallback",
      access: access(61),
      refresh,
      want: "refresh",
      fallback: false,
    },
    {
      name: "expired access, no refresh -> login",
      access: access(61),
      refresh: null,
      want: "login",
      fallback: false,
    },
    {
      name: "only a refresh token -> refresh",
      access: null,
      refresh,
      want: "refresh",
      fallback: false,
    },
    {
      name: "55 min TTL: a 3 min old token is served",
      access: access(3),
      refresh,
      policy: connectPagePolicy,
      want: "cached",
    },
    {
      name: "55 min TTL: a 5 min old token (55 left < 56) -> refresh",
      access: access(5),
      refresh,
      policy: connectPagePolicy,
      want: "refresh",
      fallback: true,
    },
    {
      name: "55 min TTL, 10 min lifetime: fresh token served (floor capped at half)",
      access: access(1, 10),
      refresh,
      policy: connectPagePolicy,
      want: "cached",
    },
    {
      name: "55 min TTL, 10 min lifetime: 6 min old -> refresh",
      access: access(6, 10),
      refresh,
      policy: connectPagePolicy,
      want: "refresh",
      fallback: true,
    },
    {
      name: "TTL 0 (helper before every request): 2 min left is still fresh",
      access: access(58),
      refresh,
      policy: { ...DEFAULT_POLICY, helperTtlMs: 0 },
      want: "cached",
    },
    {
      name: "clock went back 2 h past obtained -> refresh",
      access: access(10),
      refresh,
      now: T0 - 120 * MIN,
      want: "refresh",
      fallback: false,
    },
    {
      name: "20 s left: too close even as a fallback",
      access: { ...access(60), expiresAt: T0 + 20_000 },
      refresh,
      want: "refresh",
      fallback: false,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const d = classify(
        { access: c.access, refresh: c.refresh },
        c.now ?? T0,
        c.policy ?? DEFAULT_POLICY,
      );
      assert.equal(d.kind, c.want);
      if (c.fallback !== undefined && d.kind !== "cached") {
        assert.equal(d.fallback !== null, c.fallback);
      }
    });
  }
});

Deno.test("requiredRemainingMs: TTL + margin when the lifetime allows, else min(floor, lifetime/2)", () => {
  assert.equal(requiredRemainingMs(access(0, 60), connectPagePolicy), 56 * MIN);
  assert.equal(requiredRemainingMs(access(0, 60), DEFAULT_POLICY), 6 * MIN);
  assert.equal(requiredRemainingMs(access(0, 30), connectPagePolicy), 5 * MIN);
  assert.equal(requiredRemainingMs(access(0, 6), connectPagePolicy), 3 * MIN);
});

Deno.test("isFresh: a token exactly at the boundary is fresh", () => {
  const a = access(54); // 6 min left, default policy needs 6
  assert.equal(isFresh(a, T0, DEFAULT_POLICY), true);
  assert.equal(isFresh(a, T0 + 1, DEFAULT_POLICY), false);
});

Deno.test("policyFromEnv: reads CLAUDE_CODE_API_KEY_HELPER_TTL_MS, warns on garbage", () => {
  assert.equal(policyFromEnv(undefined).policy.helperTtlMs, 5 * MIN);
  assert.equal(policyFromEnv("3300000").policy.helperTtlMs, 55 * MIN);
  assert.equal(policyFromEnv("0").policy.helperTtlMs, 0);
  const bad = policyFromEnv("55m");
  assert.equal(bad.policy.helperTtlMs, 5 * MIN);
  assert.match(bad.warning!, /CLAUDE_CODE_API_KEY_HELPER_TTL_MS="55m"/);
});
