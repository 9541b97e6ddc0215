/**
 * Fuzz pass over the loopback callback handling (src/oauth/loopback.ts → oauth4webapi's
 * `validateAuthResponse`): thousands of generated requests from a fixed-seed PRNG — random
 * paths, methods, `Host` headers and query strings built from the parameters a callback can
 * carry (right, wrong, empty, duplicated, junk, percent-garbage, huge) — sent over real TCP to a
 * real listener.
 *
 * An oracle written from RFC 6749 §4.1.2 / RFC 8252 says what each request must do: be accepted
 * (exactly `GET` + loopback `Host` + the redirect path + one matching `state` + a `code`), fail
 * the login (the same with a non-empty `error`), or be ignored. Ignored ones go to one shared
 * listener that must never settle and never answer 2xx or 5xx (a 5xx is a handler crash);
 * accepted and failing ones each get a fresh listener and must settle exactly as predicted.
 */
import assert from "node:assert/strict";
import { listenOnFreshPort } from "./harness.ts";
import { MAX_CALLBACK_URL } from "../src/oauth/loopback.ts";
import { LoginFailedError } from "../src/errors.ts";
import { rawRequest } from "./fixtures/raw_http.ts";
import { Prng } from "./fixtures/prng.ts";

const SEED = 0x5eed_cb05;
const REQUESTS = 2000;
const STATE = "kJ8s2Q_x-Vn4pL0tR7yB3mW9cZ6fH1dA5gE2uI8oP0q";
const as = {
  issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool",
  authorization_endpoint: "http://127.0.0.1:9/oauth2/authorize",
  token_endpoint: "http://127.0.0.1:9/oauth2/token",
};
const client = { client_id: "test-client" };

type Outcome = "accept" | "fail" | "ignore";

interface Generated {
  method: string;
  target: string;
  host: string | null;
}

/** What the listener must do with a request for a listener on 127.0.0.1:`port`. */
function oracle(g: Generated, port: number): Outcome {
  if (g.method !== "GET") return "ignore";
  if (g.host === null || g.host.toLowerCase() !== `127.0.0.1:${port}`) return "ignore";
  if (`http://${g.host}${g.target}`.length > MAX_CALLBACK_URL) return "ignore";
  const url = new URL(g.target, `http://${g.host}`);
  if (url.pathname !== "/callback") return "ignore";
  const q = url.searchParams;
  const once = (k: string) => q.getAll(k).length <= 1;
  // validateAuthResponse's order: JARM `response`, `iss`, `state`, `error`, implicit tokens.
  if (q.has("response") && q.get("response") !== "") return "ignore";
  if (!once("response") || !once("iss") || !once("state") || !once("error")) return "ignore";
  if (q.get("iss") && q.get("iss") !== as.issuer) return "ignore";
  if (q.get("state") !== STATE) return "ignore";
  if (q.get("error")) return "fail";
  if (!once("id_token") || !once("token")) return "ignore";
  if (q.has("id_token") || q.has("token")) return "ignore";
  return q.get("code") ? "accept" : "ignore";
}

const PATHS = [
  "/callback",
  "/callback",
  "/callback",
  "/",
  "/callback/",
  "/callbackx",
  "/CALLBACK",
  "/%63allback",
  "//callback",
  "/callback/../callback",
  "/x/../callback",
  "/callback;x",
  "/favicon.ico",
];
const METHODS = ["GET", "GET", "GET", "GET", "GET", "POST", "HEAD", "PUT", "OPTIONS", "DELETE"];
const KEYS = [
  "code",
  "code",
  "state",
  "state",
  "error",
  "error_description",
  "iss",
  "id_token",
  "token",
  "response",
  "session_state",
  "scope",
  "x",
];

function value(r: Prng): string {
  switch (r.int(10)) {
    case 0:
      return STATE;
    case 1:
      return `${STATE}x`;
    case 2:
      return "";
    case 3:
      return r.codeUnits(1 + r.int(8)).replace(/[\ud800-\udfff]/g, "?");
    case 4:
      return "access_denied";
    case 5:
      return as.issuer;
    case 6:
      return r.string(1 + r.int(4000), "abcXYZ019-_.~%+&=");
    default:
      return r.string(1 + r.int(40), "abcdefghijklmnopqrstuvwxyz0123456789-_");
  }
}

function generate(r: Prng, port: number): Generated {
  const nearValid = r.chance(0.3);
  const method = nearValid ? "GET" : r.pick(METHODS);
  const host = nearValid || r.chance(0.6) ? `127.0.0.1:${port}` : r.pick([
    null,
    `evil.example:${port}`,
    `localhost:${port}`,
    `127.0.0.1:${port + 1}`,
    "127.0.0.1",
    `127.0.0.1:${port}.evil`,
  ]);
  const path = nearValid ? "/callback" : r.pick(PATHS);
  const pairs: [string, string][] = [];
  if (nearValid) {
    pairs.push(["state", STATE]);
    if (r.chance(0.8)) pairs.push(["code", value(r) || "c"]);
  }
  for (let n = r.int(5); n > 0; n--) pairs.push([r.pick(KEYS), value(r)]);
  if (nearValid && r.chance(0.5)) pairs.splice(0, pairs.length, ...shuffle(r, pairs));
  let query = new URLSearchParams(pairs).toString();
  if (r.chance(0.15)) query += r.pick(["&", "&&", "&=x", "&state", "&code=", "&%zz", "&a=%", "#f"]);
  const target = `${path}${query || r.chance(0.5) ? "?" : ""}${query}`;
  return { method, target, host };
}

function shuffle<T>(r: Prng, items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

async function settled(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol();
  return (await Promise.race([p.then(() => true, () => true), Promise.resolve(marker)])) !==
    marker;
}

Deno.test("fuzz: the callback listener takes thousands of generated requests; only the oracle's are accepted", async () => {
  const r = new Prng(SEED);
  const check = { as, client, state: STATE };
  const callbackOn = (p: number) => `http://127.0.0.1:${p}/callback`;
  const { port, listener: shared } = listenOnFreshPort(callbackOn, check);
  const counts: Record<Outcome, number> = { accept: 0, fail: 0, ignore: 0 };
  try {
    for (let i = 0; i < REQUESTS; i++) {
      const label = `seed ${SEED} request #${i}`;
      const g = generate(r, port);
      // Only the Host and the port decide between listeners, so predict for the shared port;
      // a settling request is replayed against a fresh listener of its own.
      const outcome = oracle(g, port);
      counts[outcome]++;
      if (outcome === "ignore") {
        const status = await rawRequest({ port, target: g.target, method: g.method, host: g.host });
        assert.ok(
          status === "closed" || (status >= 400 && status < 500),
          `${label}: ${g.method} ${g.target.slice(0, 120)} (Host ${g.host}) answered ${status}`,
        );
        if (i % 50 === 0) assert.equal(await settled(shared.result), false, `${label}: settled`);
        continue;
      }
      const { port: own, listener } = listenOnFreshPort(callbackOn, check);
      const hostFor = (h: string | null) => h?.replace(`:${port}`, `:${own}`) ?? null;
      try {
        const result = listener.result.then(
          (params) => ({ params }),
          (error) => ({ error }),
        );
        const status = await rawRequest({
          port: own,
          target: g.target,
          method: g.method,
          host: hostFor(g.host),
        });
        const got = await result;
        if (outcome === "accept") {
          assert.equal(status, 200, `${label}: ${g.target.slice(0, 160)}`);
          assert.ok("params" in got, `${label}: rejected`);
          const code = new URL(g.target, "http://x").searchParams.get("code");
          assert.equal(got.params.get("code"), code, label);
        } else {
          assert.equal(status, 400, `${label}: ${g.target.slice(0, 160)}`);
          assert.ok("error" in got && got.error instanceof LoginFailedError, `${label}: failed`);
          const message = (got.error as Error).message;
          assert.ok(/^[\x20-\x7e]+$/.test(message), `${label}: one printable line`);
          assert.ok(message.length < 200, `${label}: ${message.length} characters`);
        }
      } finally {
        await listener.close();
      }
    }
    assert.equal(await settled(shared.result), false, "nothing ignorable settled the shared one");
    // The generator reached every branch.
    assert.ok(counts.accept > 50, `accepted ${counts.accept}`);
    assert.ok(counts.fail > 10, `failed ${counts.fail}`);
    assert.ok(counts.ignore > 1000, `ignored ${counts.ignore}`);
  } finally {
    await shared.close();
  }
});
