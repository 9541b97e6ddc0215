/**
 * The listener's one-time start page (issue 11 finding 5, SPEC.md §1.3): the browser is given
 * `http://<host>:<port>/start/<random>`, which answers 302 to the authorize URL once; the
 * path is in the browser's argv, so a second request cancels the sign-in.
 */
import assert from "node:assert/strict";
import { LoginFailedError } from "../errors.ts";
import { listenForCallback } from "./loopback.ts";

const STATE = "Zq3v8uB1xV0rT5yN2mK7pL4cJ9hG6fD0sA1wE3rT5yU";
const as = {
  issuer: "https://issuer.example",
  authorization_endpoint: "http://127.0.0.1:9/oauth2/authorize",
  token_endpoint: "http://127.0.0.1:9/oauth2/token",
};
const client = { client_id: "test-client" };
const AUTHORIZE = `${as.authorization_endpoint}?state=${STATE}&nonce=n&code_challenge=c`;

function freeRedirect(): string {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `http://127.0.0.1:${port}/callback`;
}

async function get(url: string): Promise<Response> {
  const r = await fetch(url, { redirect: "manual" });
  await r.body?.cancel();
  return r;
}

Deno.test("loopback start page: unguessable path, one 302 to the authorize URL, no secret in its URL", async () => {
  const listener = listenForCallback([freeRedirect()], { as, client, state: STATE });
  try {
    const start = listener.serveStart(AUTHORIZE);
    const other = listenForCallback([freeRedirect()], { as, client, state: STATE });
    const otherStart = other.serveStart(AUTHORIZE);
    await other.close();
    assert.equal(new URL(start).origin, new URL(listener.redirectUri).origin);
    assert.match(new URL(start).pathname, /^\/start\/[\w-]{43}$/);
    assert.notEqual(new URL(start).pathname, new URL(otherStart).pathname);
    for (const secret of [STATE, "nonce", "code_challenge"]) assert.ok(!start.includes(secret));

    const wrong = await get(start.replace(/.$/, (c) => (c === "A" ? "B" : "A")));
    assert.equal(wrong.status, 404, "a guessed start path is not served");
    const first = await get(start);
    assert.equal(first.status, 302);
    assert.equal(first.headers.get("location"), AUTHORIZE);
    assert.equal(first.headers.get("cache-control"), "no-store");
    assert.equal(first.headers.get("referrer-policy"), "no-referrer");
  } finally {
    await listener.close();
  }
});

Deno.test("loopback start page: a second request cancels the sign-in (someone else read the browser's argv)", async () => {
  const listener = listenForCallback([freeRedirect()], { as, client, state: STATE });
  const outcome = listener.result.then(() => null, (e) => e);
  try {
    const start = listener.serveStart(AUTHORIZE);
    assert.equal((await get(start)).status, 302);
    assert.equal((await get(start)).status, 409);
    const error = await outcome;
    assert.ok(error instanceof LoginFailedError);
    assert.match(error.message, /requested twice .* cancelled/);
    // The callback of either requester is no longer accepted.
    const late = await get(`${listener.redirectUri}?code=c&state=${STATE}`).catch(() => null);
    assert.ok(late === null || late.status === 410);
  } finally {
    await listener.close();
  }
});

Deno.test("loopback start page: after the sign-in finished it answers 410, not a redirect", async () => {
  const listener = listenForCallback([freeRedirect()], { as, client, state: STATE });
  try {
    const start = listener.serveStart(AUTHORIZE);
    assert.equal((await get(start)).status, 302);
    assert.equal((await get(`${listener.redirectUri}?code=c&state=${STATE}`)).status, 200);
    assert.equal((await listener.result).get("code"), "c");
    const again = await get(start).catch(() => null);
    assert.ok(again === null || again.status === 410);
  } finally {
    await listener.close();
  }
});
