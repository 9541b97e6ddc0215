/**
 * Paste mode's reading of a pasted line (issue 11 finding 4): every line is either callback
 * parameters to check or a one-line reason, never an exception, and no reason quotes the line
 * (it may hold a code).
 */
import assert from "node:assert/strict";
import { LoginFailedError } from "../errors.ts";
import { checkPaste, duration, parsePaste } from "./login.ts";

const STATE = "Zq3v8uB1xV0rT5yN2mK7pL4cJ9hG6fD0sA1wE3rT5yU";
const as = {
  issuer: "https://issuer.example",
  authorization_endpoint: "http://127.0.0.1:9/oauth2/authorize",
  token_endpoint: "http://127.0.0.1:9/oauth2/token",
};
const client = { client_id: "test-client" };
const CB = "http://localhost:47621/callback";

Deno.test("issue 11 finding 4: a pasted line is answered, never thrown; reasons never quote it", () => {
  const cases: [string, string | RegExp][] = [
    [`${CB}?code=SECRET1&state=${STATE}`, "ok"],
    [`localhost:47621/callback?code=SECRET1&state=${STATE}`, "ok"],
    [`code=SECRET1&state=${STATE}`, "ok"],
    ["0d1e3f6a-1111-4a4a-9b9b-123456789abc", "ok"], // a bare code
    [`http://[bad?code=SECRET1&state=${STATE}`, "it is not a valid URL"],
    ["http://%zz?code=SECRET1", "it is not a valid URL"],
    [`${CB}?code=SECRET1&state=SECRETSTATE`, /another sign-in/],
    [`${CB}?code=SECRET1`, /has no state=/],
    [`${CB}?state=${STATE}`, /has no code=/],
    [`${CB}?code=&state=${STATE}`, /not a valid answer|code is empty/],
    [`${CB}?code=SECRET1&state=${STATE}&state=${STATE}`, /not a valid answer/],
    ["two words SECRET1", "it is neither a URL nor a code"],
    ["\u0000SECRET1", "it is neither a URL nor a code"],
    [`${CB}?code=SECRET1&state=${STATE}&pad=${"a".repeat(9000)}`, /too long/],
    ["?", /has no code=/],
    ["=", /has no code=/],
    ["javascript:alert(1)?code=SECRET1", /has no state=/],
  ];
  for (const [line, want] of cases) {
    const got = checkPaste(line, as, client, STATE);
    if (want === "ok") {
      assert.ok("params" in got, `${line}: ${JSON.stringify(got)}`);
      assert.ok(got.params.get("code"));
      continue;
    }
    assert.ok("reason" in got, `${line}: ${JSON.stringify(got)}`);
    if (typeof want === "string") assert.equal(got.reason, want, line);
    else assert.match(got.reason, want, line);
    assert.ok(!got.reason.includes("SECRET"), `the reason quotes the paste: ${got.reason}`);
  }
});

Deno.test("paste: the server's own error answer (right state) ends the login with its sentence", () => {
  const got = checkPaste(`${CB}?error=access_denied&state=${STATE}`, as, client, STATE);
  assert.ok("error" in got);
  assert.ok(got.error instanceof LoginFailedError);
  assert.equal(got.error.message, "The sign-in was denied (access_denied)");
  // Someone else's error answer (another state) is only a reason to ask again.
  const foreign = checkPaste(`${CB}?error=access_denied&state=x`, as, client, STATE);
  assert.ok("reason" in foreign);
});

Deno.test("paste: a bare code gets this sign-in's state; a URL keeps its own", () => {
  const bare = parsePaste("  the-code  ", STATE);
  assert.ok("params" in bare);
  assert.equal(bare.params.get("code"), "the-code");
  assert.equal(bare.params.get("state"), STATE);
  const url = parsePaste(`${CB}?code=c&state=other`, STATE);
  assert.ok("params" in url);
  assert.equal(url.params.get("state"), "other");
});

Deno.test("login: the wait is said in minutes or seconds", () => {
  assert.equal(duration(300_000), "5 min");
  assert.equal(duration(20_000), "20 s");
  assert.equal(duration(90_000), "90 s");
  assert.equal(duration(3_000), "3 s");
});

Deno.test("paste: 3,000 generated lines never throw (bounded work, fixed seed)", () => {
  const pieces = [
    "http://",
    "https://",
    "[",
    "]",
    "?",
    "&",
    "=",
    "#",
    "%",
    "%zz",
    "code",
    "state",
    STATE,
    "error",
    "access_denied",
    "localhost:47621",
    "/callback",
    " ",
    "\t",
    "\u0000",
    "é",
    "\ud800",
    "x".repeat(3000),
  ];
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < 3000; i++) {
    let line = "";
    for (let n = next() % 8; n >= 0; n--) line += pieces[next() % pieces.length];
    const got = checkPaste(line, as, client, STATE);
    assert.ok("params" in got || "reason" in got || "error" in got);
  }
});
