/**
 * What the Secret Service session's Diffie-Hellman costs the cached `token` (issue 14): the key
 * pair (2^x mod p) and the shared secret (y^x mod p) with the 256-bit private exponent
 * `token` uses, or, for comparison, a full 1024-bit one, timed in a fresh process as `token`
 * pays them (cold code, the key pair first). Measurement only, for the bench's breakdown.
 *
 * Usage: `deno run … dh_cost.ts 256|1024`; prints one JSON line `{keyPair, shared}` (ms) on
 * stderr.
 *
 * @module
 */

import {
  bytesToBigInt,
  generateKeyPair,
  modPow,
  OAKLEY_1024,
} from "../../src/store/dbus/secret_read.ts";

const bits = Number(Deno.args[0]);
if (bits !== 256 && bits !== 1024) throw new Error("usage: dh_cost.ts 256|1024");
// Any value in the group serves as the keyring's public value for timing; none is computed
// before the clock starts, so the key pair runs cold, as in `token`.
const peer = OAKLEY_1024 / 3n;
const exponent = bits === 256
  ? undefined // generateKeyPair's own random 256-bit exponent
  : bytesToBigInt(crypto.getRandomValues(new Uint8Array(bits / 8))) % (OAKLEY_1024 - 2n) + 1n;
let t = performance.now();
const keys = generateKeyPair(exponent);
const keyPair = performance.now() - t;
t = performance.now();
modPow(peer, keys.privateKey, OAKLEY_1024);
const shared = performance.now() - t;
console.error(JSON.stringify({ keyPair, shared }));
