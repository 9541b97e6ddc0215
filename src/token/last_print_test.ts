/**
 * The rejected-token rule's pure core and its file (SPEC.md §1.6). The real Claude Code drives
 * the same rule end to end in test/claude_code_test.ts.
 */
import assert from "node:assert/strict";
import {
  claudeCaller,
  judge,
  JUST_REJECTED_MS,
  type LastPrint,
  MAX_CALLERS,
  noted,
  readLastPrint,
  RECOVERY_INTERVAL_MS,
  retryWindowMs,
  tokenHash,
  writeLastPrint,
} from "./last_print.ts";

const T0 = 1_800_000_000_000;
const W = retryWindowMs(3_300_000);
const H = tokenHash("token-one");

function env(vars: Record<string, string>) {
  return { get: (k: string) => vars[k] };
}

Deno.test("last print: the window is half the helper TTL; TTL 0 (a helper run per request) disables the rule", () => {
  assert.equal(retryWindowMs(3_300_000), 1_650_000);
  assert.equal(retryWindowMs(300_000), 150_000);
  const r = noted(null, "a", H, T0);
  assert.deepEqual(judge(r, "a", H, T0 + 1, retryWindowMs(0)), { kind: "print" });
});

Deno.test("last print: the caller is Claude Code's helper call only, never its Bash tool or another program", () => {
  assert.equal(claudeCaller(env({}), 7), null, "not run by Claude Code");
  assert.equal(
    claudeCaller(env({ CLAUDE_CODE_ENTRYPOINT: "cli", CLAUDECODE: "1" }), 7),
    null,
    "a shell of Claude's Bash tool",
  );
  assert.equal(
    claudeCaller(
      env({ CLAUDE_CODE_ENTRYPOINT: "sdk-cli", CLAUDE_CODE_MESSAGING_SOCKET: "/tmp/cc/1.sock" }),
      7,
    ),
    "s:/tmp/cc/1.sock",
  );
  assert.equal(claudeCaller(env({ CLAUDE_CODE_ENTRYPOINT: "cli" }), 7), "p:7");
});

Deno.test("last print: the same caller asking again for the token it just got -> recover", () => {
  const r = noted(null, "a", H, T0);
  assert.deepEqual(judge(r, "a", H, T0 + 1000, W), { kind: "recover" });
});

Deno.test("last print: other callers, other tokens, late asks -> print", () => {
  const r = noted(null, "a", H, T0);
  assert.deepEqual(judge(null, "a", H, T0, W), { kind: "print" }, "first call ever");
  assert.deepEqual(judge(r, "b", H, T0 + 1000, W), { kind: "print" }, "a parallel session");
  assert.deepEqual(
    judge(r, "a", tokenHash("token-two"), T0 + 1000, W),
    { kind: "print" },
    "a new token",
  );
  assert.deepEqual(judge(r, "a", H, T0 + W, W), { kind: "print" }, "Claude's TTL call");
  assert.deepEqual(judge(r, "a", H, T0 - 5000, W), { kind: "print" }, "clock went back");
});

Deno.test("last print: parallel sessions are each remembered (up to MAX_CALLERS)", () => {
  let r: LastPrint | null = null;
  for (let i = 0; i < 4; i++) r = noted(r, `s${i}`, H, T0 + i);
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(judge(r, `s${i}`, H, T0 + 2000, W), { kind: "recover" }, `s${i}`);
  }
  for (let i = 4; i < 20; i++) r = noted(r, `s${i}`, H, T0 + i);
  assert.equal(Object.keys(r!.seen).length, MAX_CALLERS);
  assert.ok("s19" in r!.seen && !("s0" in r!.seen), "the oldest are dropped");
});

Deno.test("last print: at most one recovery per interval; the fresh token rejected too -> fail", () => {
  const H2 = tokenHash("token-two");
  const after = noted(noted(null, "a", H, T0), "a", H2, T0 + 1000, { at: T0 + 1000, h: H2 });
  assert.deepEqual(judge(after, "a", H2, T0 + 3000, W), {
    kind: "rejected_again",
    secondsAgo: 2,
  });
  const later = noted(after, "a", H2, T0 + 1000 + JUST_REJECTED_MS);
  assert.deepEqual(
    judge(later, "a", H2, T0 + 2000 + JUST_REJECTED_MS, W),
    { kind: "print" },
    "past the short window but inside the interval: no refresh, no failure",
  );
  const H3 = tokenHash("token-three");
  const other = noted(after, "b", H3, T0 + 5000);
  assert.deepEqual(judge(other, "b", H3, T0 + 6000, W), { kind: "print" }, "interval not over");
  assert.deepEqual(
    judge(other, "b", H3, T0 + 6000 + RECOVERY_INTERVAL_MS, W + RECOVERY_INTERVAL_MS),
    { kind: "recover" },
    "after the interval",
  );
  assert.deepEqual(noted(other, "c", H, T0 + 7000).rec, after.rec, "the recovery is kept");
});

Deno.test("last print: the file holds a hash, never the token; garbage reads as no record", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/last-print.json`;
    assert.equal(readLastPrint(path), null, "missing");
    const r = noted(null, "s:/tmp/cc/1.sock", tokenHash("secret-token-value"), T0);
    writeLastPrint(path, r);
    const text = Deno.readTextFileSync(path);
    assert.ok(!text.includes("secret-token-value"));
    assert.deepEqual(readLastPrint(path), r);
    if (Deno.build.os !== "windows") assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.deepEqual(Array.from(Deno.readDirSync(dir), (e) => e.name), ["last-print.json"]);
    for (const bad of ["", "{", "[]", '{"v":2,"h":"x","seen":{}}', '{"v":1,"h":"x"}']) {
      Deno.writeTextFileSync(path, bad);
      assert.equal(readLastPrint(path), null, bad);
    }
    writeLastPrint(`${dir}/missing-dir/last-print.json`, r); // ignored, no throw
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("last print: the token hash is 64 bits, stable, and tells near-identical tokens apart", () => {
  const a = "eyJ" + "x".repeat(1000);
  assert.match(tokenHash(a), /^[0-9a-f]{16}$/);
  assert.equal(tokenHash(a), tokenHash(a));
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    seen.add(tokenHash(a.slice(0, -4) + i.toString().padStart(4, "0")));
  }
  assert.equal(seen.size, 2000);
  assert.notEqual(tokenHash(a), tokenHash(a + "x"));
});
