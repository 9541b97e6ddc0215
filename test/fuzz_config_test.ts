/**
 * Fuzz pass over the config parser (src/config/config.ts `parseConfig`, `parseConfigObject`,
 * `validateConfig`, and src/config/json_error.ts): thousands of inputs from a fixed-seed PRNG,
 * structured (random objects over the real field names and nasty values), mutated (edits of a
 * valid file), raw (random code units) and pathological (deep nesting, huge values). Whatever
 * the input: no crash, no exception other than `ConfigError`, messages that name the file, an
 * accepted config that really is valid, and no input slow enough to notice.
 *
 * Found by this pass: nesting deeper than the call stack made `jsonErrorOffset` throw a
 * RangeError, which the CLI reported as an internal error (exit 70); fixed in json_error.ts.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../src/errors.ts";
import {
  isLoopbackHost,
  type LoadedConfig,
  parseConfig,
  redirectUriProblem,
} from "../src/config/config.ts";
import { jsonErrorLine, jsonErrorOffset } from "../src/config/json_error.ts";
import { Prng } from "./fixtures/prng.ts";

const SEED = 0x5eed_0005;
const PATH = "/home/u/.config/agent-runner/config.json";
const FIELDS = [
  "tenant_url",
  "auth_domain",
  "client_id",
  "scope",
  "redirect_uri",
  "issuer",
  "store",
  "profiles",
];
const VALUES: unknown[] = [
  "",
  " ",
  "\t\n",
  "x",
  "https://acme.proxy.example.com",
  "auth.example.com",
  "auth.example.com/",
  "https://auth.example.com/",
  "https://auth.example.com/path/",
  "http://auth.example.com",
  "http://127.0.0.1:9",
  "http://127.0.0.1.evil.example",
  "http://localhost:1",
  "http://[::1]:2",
  "http://0.0.0.0:3",
  "http://2130706433",
  "ftp://x",
  "javascript:alert(1)",
  "file:///etc/passwd",
  "https://user:pw@auth.example.com",
  "https://auth.example.com?x=1",
  "https://auth.example.com#frag",
  "https://é.example",
  "http://localhost:47621/callback",
  "http://localhost/cb",
  "http://localhost:1/cb#x",
  "https://localhost:1/cb",
  "openid email profile proxy/invoke",
  "a b",
  "\u0000",
  "\ud800",
  "\u202eevil",
  "%00",
  "secret-service",
  "pass",
  "auto",
  "encrypted-file",
  "plaintext",
  "default",
  "work",
  "__proto__",
  "a".repeat(5000),
  0,
  -1,
  1e308,
  true,
  false,
  null,
  [],
  ["https://a.example.com"],
  {},
  { nested: { deep: [1, 2, 3] } },
];
const PROFILES = ["default", "work", "x", "__proto__"];
const GOOD = {
  tenant_url: "https://acme.proxy.example.com",
  auth_domain: "auth.example.com",
  client_id: "abc123",
  scope: "openid email proxy/invoke",
};

/** Parses one input; returns what happened, failing the test on anything but ConfigError. */
function check(text: string, profile: string, label: string): "ok" | "error" {
  let loaded: LoadedConfig;
  try {
    loaded = parseConfig(text, PATH, profile);
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      throw new Error(`${label}: ${error instanceof Error ? error.name : typeof error}: ${error}`);
    }
    assert.ok(error.message.startsWith(PATH), `${label}: names the file: ${error.message}`);
    assert.ok(!/\[object Object\]|\bundefined\b/.test(error.message), `${label}: ${error.message}`);
    const line = /^:(\d+): invalid JSON/.exec(error.message.slice(PATH.length))?.[1];
    if (line !== undefined) {
      const lines = text.split("\n").length;
      assert.ok(Number(line) >= 1 && Number(line) <= lines, `${label}: line ${line} of ${lines}`);
    }
    return "error";
  }
  // Accepted: it must really be valid.
  const c = loaded.config;
  for (const field of ["tenant_url", "auth_domain", "client_id", "scope"] as const) {
    assert.equal(typeof c[field], "string", `${label}: ${field}`);
    assert.notEqual(c[field].trim(), "", `${label}: ${field} empty`);
  }
  assert.ok(
    loaded.authBase.protocol === "https:" ||
      (loaded.authBase.protocol === "http:" && isLoopbackHost(loaded.authBase.hostname)),
    `${label}: auth base ${loaded.authBase.href}`,
  );
  assert.ok(!/\s/.test(c.client_id), `${label}: client_id without spaces`);
  if (c.redirect_uri !== undefined) assert.equal(redirectUriProblem(c.redirect_uri), null);
  return "ok";
}

function randomValue(r: Prng, depth: number): unknown {
  if (depth > 0 && r.chance(0.15)) {
    const o: Record<string, unknown> = {};
    for (let i = r.int(4); i > 0; i--) {
      o[r.chance(0.6) ? r.pick(FIELDS) : r.string(1 + r.int(6), "abc_-xyz")] = randomValue(
        r,
        depth - 1,
      );
    }
    return o;
  }
  if (depth > 0 && r.chance(0.1)) {
    return Array.from({ length: r.int(3) }, () => randomValue(r, depth - 1));
  }
  if (r.chance(0.1)) return r.codeUnits(1 + r.int(12));
  return r.pick(VALUES);
}

/** A random object over the real field names: mostly the good config with a few fields broken. */
function structured(r: Prng): string {
  const o: Record<string, unknown> = r.chance(0.7) ? { ...GOOD } : {};
  for (let i = 1 + r.int(4); i > 0; i--) {
    const key = r.chance(0.8) ? r.pick(FIELDS) : r.string(1 + r.int(8), "abcdefxyz_");
    if (r.chance(0.15)) delete o[key];
    else {o[key] = key === "profiles" && r.chance(0.5)
        ? { [r.pick(PROFILES)]: r.chance(0.5) ? { ...GOOD } : randomValue(r, 2) }
        : randomValue(r, 2);}
  }
  return JSON.stringify(o, null, r.chance(0.5) ? 2 : undefined);
}

/** A valid file with a few random edits. */
function mutated(r: Prng): string {
  let text = JSON.stringify(GOOD, null, 2);
  const significant = '{}[]",:\\ \n\t0123456789-+.eEtrufalsn\u00e9\u2028\ufeff';
  for (let edits = 1 + r.int(4); edits > 0; edits--) {
    const at = r.int(text.length + 1);
    switch (r.int(4)) {
      case 0:
        text = text.slice(0, at) + text.slice(at + 1 + r.int(5));
        break;
      case 1:
        text = text.slice(0, at) + r.string(1 + r.int(3), significant) + text.slice(at);
        break;
      case 2:
        text = text.slice(0, at) + text.slice(r.int(text.length), at) + text.slice(at);
        break;
      default:
        text = text.slice(0, at);
    }
  }
  return text;
}

function pathological(r: Prng): string {
  const n = 1 + r.int(200_000);
  switch (r.int(7)) {
    case 0:
      return "[".repeat(n);
    case 1:
      return '{"a":'.repeat(Math.min(n, 60_000));
    case 2:
      return `{"tenant_url":${"[".repeat(n)}`;
    case 3:
      return JSON.stringify({ ...GOOD, client_id: "x".repeat(n) });
    case 4:
      return `[${"1,".repeat(Math.min(n, 100_000))}1]`;
    case 5:
      return JSON.stringify({ ...GOOD, tenant_url: `https://${"a.".repeat(Math.min(n, 50_000))}` });
    default:
      return `"${"\\u00".repeat(Math.min(n, 50_000))}`;
  }
}

Deno.test("fuzz: the config parser takes thousands of generated files without a crash", () => {
  const r = new Prng(SEED);
  const outcomes = { ok: 0, error: 0 };
  const kinds: [string, (r: Prng) => string, number][] = [
    ["structured", structured, 2500],
    ["mutated", mutated, 2500],
    ["raw", (r) => r.codeUnits(r.int(80)), 1000],
    ["pathological", pathological, 40],
  ];
  for (const [kind, generate, count] of kinds) {
    for (let i = 0; i < count; i++) {
      const text = generate(r);
      const profile = r.chance(0.8) ? "default" : r.pick(PROFILES);
      outcomes[check(text, profile, `seed ${SEED} ${kind} #${i}`)]++;
    }
  }
  // Both branches were exercised, not just the error one.
  assert.ok(outcomes.ok > 300, `accepted ${outcomes.ok}`);
  assert.ok(outcomes.error > 3000, `refused ${outcomes.error}`);
});

Deno.test("fuzz: json_error's scanner agrees with JSON.parse on what is valid", () => {
  const r = new Prng(SEED + 1);
  for (let i = 0; i < 4000; i++) {
    const text = i % 2 ? mutated(r) : structured(r);
    let valid = true;
    try {
      JSON.parse(text);
    } catch {
      valid = false;
    }
    const offset = jsonErrorOffset(text);
    assert.ok(offset >= 0 && offset <= text.length, `#${i}: offset ${offset}`);
    if (valid) assert.equal(offset, text.length, `#${i}: valid JSON flagged at ${offset}`);
    assert.ok(jsonErrorLine(text) >= 1);
  }
});

Deno.test("fuzz regression: nesting deeper than the stack is a ConfigError naming line 1", () => {
  for (const text of ["[".repeat(200_000), '{"a":'.repeat(60_000), `{"x":${"[".repeat(100_000)}`]) {
    assert.throws(
      () => parseConfig(text, PATH),
      (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${PATH}:1: invalid JSON`),
    );
  }
});
