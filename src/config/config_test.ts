import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import {
  isLoopbackHost,
  mergeConfig,
  parseConfig,
  redirectUriProblem,
  writeConfig,
} from "./config.ts";
import { resolvePaths } from "./paths.ts";

const P = "/home/u/.config/agent-runner/config.json";
const good = {
  tenant_url: "https://acme.proxy.example.com",
  auth_domain: "auth.example.com",
  client_id: "abc123",
  scope: "openid email proxy/invoke",
};

function errorOf(text: string): string {
  try {
    parseConfig(text, P);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.ok(!error.message.includes("\n"), "one line");
    return error.message;
  }
  throw new Error("expected an error");
}

Deno.test("config: a valid file parses; auth_domain host means https", () => {
  const c = parseConfig(JSON.stringify(good), P);
  assert.equal(c.authBase.href, "https://auth.example.com/");
  assert.equal(c.config.client_id, "abc123");
});

Deno.test("config: auth_domain as URL, trailing slash dropped, http only on loopback", () => {
  assert.equal(
    parseConfig(JSON.stringify({ ...good, auth_domain: "https://auth.example.com/" }), P).authBase
      .origin,
    "https://auth.example.com",
  );
  assert.equal(
    parseConfig(JSON.stringify({ ...good, auth_domain: "http://127.0.0.1:9999" }), P).authBase
      .origin,
    "http://127.0.0.1:9999",
  );
  assert.match(
    errorOf(JSON.stringify({ ...good, auth_domain: "http://auth.example.com" })),
    /field "auth_domain" may use plain http only for a loopback host/,
  );
});

Deno.test("config: every bad input names the file and the field or line", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["empty file", "", /config\.json: the file is empty/],
    ["whitespace only", "  \n", /the file is empty/],
    ["invalid JSON", '{\n  "tenant_url": "x",\n  oops\n}', /config\.json:3: invalid JSON/],
    ["array at top", "[]", /expected a JSON object/],
    [
      "missing client_id",
      JSON.stringify({ ...good, client_id: undefined }),
      /field "client_id" is missing/,
    ],
    [
      "number client_id",
      JSON.stringify({ ...good, client_id: 5 }),
      /field "client_id" must be a string, not a number/,
    ],
    ["empty scope", JSON.stringify({ ...good, scope: "" }), /field "scope" is empty/],
    [
      "bad tenant_url",
      JSON.stringify({ ...good, tenant_url: "not a url" }),
      /field "tenant_url" is not a URL/,
    ],
    [
      "http tenant_url",
      JSON.stringify({ ...good, tenant_url: "http://acme.example.com" }),
      /field "tenant_url" must use https/,
    ],
    [
      "ftp auth_domain",
      JSON.stringify({ ...good, auth_domain: "ftp://x" }),
      /field "auth_domain" must be https/,
    ],
    [
      "redirect not loopback",
      JSON.stringify({ ...good, redirect_uri: "http://example.com:1/cb" }),
      /field "redirect_uri" must point at localhost/,
    ],
    [
      "redirect without port",
      JSON.stringify({ ...good, redirect_uri: "http://localhost/cb" }),
      /field "redirect_uri" must name a port/,
    ],
    [
      "unknown store",
      JSON.stringify({ ...good, store: "plaintext" }),
      /field "store" must be one of/,
    ],
  ];
  for (const [name, text, want] of cases) {
    await t.step(name, () => assert.match(errorOf(text), want));
  }
});

Deno.test("config: unknown fields survive a merge and a rewrite, in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/config.json`;
    const raw = { wizard_version: 3, ...good, extra: { nested: [1, 2] } };
    const merged = mergeConfig(raw, { scope: "openid", client_id: undefined }, path);
    await writeConfig(merged);
    const back = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(Object.keys(back), [
      "wizard_version",
      "tenant_url",
      "auth_domain",
      "client_id",
      "scope",
      "extra",
    ]);
    assert.equal(back.scope, "openid");
    assert.equal(back.client_id, "abc123");
    assert.deepEqual(back.extra, { nested: [1, 2] });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/sub`)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: loopback hosts and redirect URIs", () => {
  for (const h of ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"]) assert.ok(isLoopbackHost(h), h);
  for (const h of ["example.com", "10.0.0.1", "localhost.evil.com", "0.0.0.0"]) {
    assert.ok(!isLoopbackHost(h), h);
  }
  assert.equal(redirectUriProblem("http://127.0.0.1:47621/callback"), null);
  assert.match(redirectUriProblem("https://localhost:1/cb")!, /http:\/\/ loopback/);
});

Deno.test("paths: AGENT_RUNNER_CONFIG_DIR wins, then XDG_CONFIG_HOME, then HOME", () => {
  const env = (m: Record<string, string>) => ({ get: (k: string) => m[k] });
  assert.equal(
    resolvePaths(env({ AGENT_RUNNER_CONFIG_DIR: "/c", HOME: "/h" }), "linux").lock,
    "/c/lock",
  );
  assert.equal(
    resolvePaths(env({ XDG_CONFIG_HOME: "/x", HOME: "/h" }), "linux").config,
    "/x/agent-runner/config.json",
  );
  assert.equal(resolvePaths(env({ HOME: "/h" }), "linux").dir, "/h/.config/agent-runner");
  assert.equal(
    resolvePaths(env({ APPDATA: "C:\\A" }), "windows").config,
    "C:\\A\\agent-runner\\config.json",
  );
  assert.throws(() => resolvePaths(env({}), "linux"), ConfigError);
});
