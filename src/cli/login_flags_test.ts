import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { checkLoginFlags, loginUpdates } from "./login_flags.ts";

const PATH = "/home/u/.config/agent-runner/config.json";
const GOOD = {
  "tenant-url": "https://acme.proxy.example.com",
  "auth-domain": "auth.example.com",
  "client-id": "1example",
};

function usage(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    return error.message;
  }
  assert.fail("no usage error");
}

Deno.test("login flags: a bad value names the flag, even with no config file", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { "tenant-url": "http://acme.example.test" },
      /^login: --tenant-url must use https \(http only for loopback\)$/,
    ],
    [{ "tenant-url": "not a url" }, /^login: --tenant-url is not a URL: "not a url"$/],
    [
      { "auth-domain": "http://auth.example.com" },
      /^login: --auth-domain may use plain http only for a loopback host/,
    ],
    [{ "client-id": "a b" }, /^login: --client-id must not contain spaces$/],
    [
      { "redirect-uri": "https://localhost:1/cb" },
      /^login: --redirect-uri must be an http:\/\/ loopback URL/,
    ],
    [{ "scope": " " }, /^login: --scope is empty$/],
  ];
  for (const [flags, expected] of cases) {
    const message = usage(() => checkLoginFlags(loginUpdates({ ...GOOD, ...flags }), null, PATH));
    assert.match(message, expected);
    assert.ok(!message.includes(PATH), "the file is not blamed for a flag");
  }
  // loopback http is fine
  checkLoginFlags(loginUpdates({ ...GOOD, "tenant-url": "http://127.0.0.1:8080" }), null, PATH);
});

Deno.test("login flags: every missing required flag in one line", () => {
  assert.equal(
    usage(() => checkLoginFlags(loginUpdates({}), null, PATH)),
    `login: missing --tenant-url URL, --auth-domain HOST and --client-id ID (${PATH} does not exist yet)`,
  );
  assert.equal(
    usage(() => checkLoginFlags(loginUpdates({}), { tenant_url: "https://t.example" }, PATH)),
    `login: missing --auth-domain HOST and --client-id ID (${PATH} has no auth_domain, client_id)`,
  );
  assert.match(
    usage(() => checkLoginFlags(loginUpdates({}), { ...{ client_id: "x" } }, PATH, "work")),
    /missing --tenant-url URL, --auth-domain HOST and --client-id ID \(.* has no profile "work" yet\)/,
  );
  // The file provides what the flags do not: nothing to say.
  checkLoginFlags(
    loginUpdates({ "client-id": "new" }),
    { tenant_url: "https://t.example", auth_domain: "a.example" },
    PATH,
  );
});
