import { deepStrictEqual as same, equal } from "node:assert/strict";
import { sessionBusPath } from "./connection.ts";
import {
  bigIntToBytes,
  bytesToBigInt,
  deriveSessionKey,
  generateKeyPair,
  modPow,
  OAKLEY_1024,
} from "./secret_read.ts";

Deno.test("modPow agrees with small known answers and with the group's order", () => {
  equal(modPow(4n, 13n, 497n), 445n);
  equal(modPow(2n, 10n, 1000n), 24n);
  equal(modPow(7n, 0n, 13n), 1n);
  // p is a safe prime and 2 generates the subgroup of order q = (p-1)/2: 2^q ≡ 1 (mod p).
  equal(modPow(2n, (OAKLEY_1024 - 1n) / 2n, OAKLEY_1024), 1n);
  equal(modPow(5n, 1n, 3n), 2n);
  equal(modPow(2n, 5n, 3n), 2n); // 32 mod 3, through the doubling path
  equal(modPow(2n, 0n, 1n), 0n);
});

/** Right-to-left binary exponentiation: an independent reference for modPow. */
function referenceModPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n % modulus;
  for (base %= modulus; exponent > 0n; exponent >>= 1n, base = (base * base) % modulus) {
    if (exponent & 1n) result = (result * base) % modulus;
  }
  return result;
}

Deno.test("modPow agrees with a reference, base 2 (the doubling path) and others, random exponents", () => {
  for (let i = 0; i < 20; i++) {
    const x = bytesToBigInt(crypto.getRandomValues(new Uint8Array(32)));
    const y = bytesToBigInt(crypto.getRandomValues(new Uint8Array(128)));
    equal(modPow(2n, x, OAKLEY_1024), referenceModPow(2n, x, OAKLEY_1024));
    equal(modPow(y, x, OAKLEY_1024), referenceModPow(y, x, OAKLEY_1024));
  }
});

Deno.test("big-endian bytes <-> bigint, left-padded, and refused when too big", () => {
  same(bigIntToBytes(0x0102n, 4), new Uint8Array([0, 0, 1, 2]));
  equal(bytesToBigInt(new Uint8Array([0, 0, 1, 2])), 0x0102n);
  equal(bytesToBigInt(new Uint8Array(0)), 0n);
  equal(bigIntToBytes(1n << 32n, 4), null);
});

Deno.test("the public key is always 128 bytes, even when it is small (KWallet needs that)", () => {
  const keys = generateKeyPair(1n); // 2^1 = 2
  equal(keys.publicKey.length, 128);
  equal(keys.publicKey[127], 2);
  equal(keys.publicKey.slice(0, 127).every((b) => b === 0), true);
  const random = generateKeyPair();
  equal(random.publicKey.length, 128);
  equal(random.privateKey > 0n && random.privateKey < 1n << 256n, true);
});

Deno.test("two parties derive the same AES key: what one encrypts the other decrypts", async () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  // Retry the 1-in-256 pair whose shared secret starts with a zero byte (it reads as null).
  const keyA = await deriveSessionKey(a, b.publicKey);
  const keyB = await deriveSessionKey(b, a.publicKey);
  equal(keyA === null, keyB === null);
  if (!keyA || !keyB) return;
  const iv = crypto.getRandomValues(new Uint8Array(16));
  const secret = new TextEncoder().encode("eyJ.token 🔑");
  const ciphertext = await crypto.subtle.encrypt({ name: "AES-CBC", iv }, keyA, secret);
  same(
    new Uint8Array(await crypto.subtle.decrypt({ name: "AES-CBC", iv }, keyB, ciphertext)),
    secret,
  );
});

Deno.test("a peer value out of range, or a shared secret with a leading zero byte, gives no key", async () => {
  const keys = generateKeyPair();
  for (const peer of [0n, 1n, OAKLEY_1024 - 1n, OAKLEY_1024]) {
    equal(await deriveSessionKey(keys, bigIntToBytes(peer, 129)!), null, `peer ${peer}`);
  }
  // With x = 1 the shared secret is the peer's value itself: 5 is 127 zero bytes and a 5.
  equal(await deriveSessionKey(generateKeyPair(1n), bigIntToBytes(5n, 128)!), null);
});

Deno.test("sessionBusPath: the first unix:path entry, unescaped; XDG_RUNTIME_DIR/bus when unset", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  equal(
    sessionBusPath(env({ DBUS_SESSION_BUS_ADDRESS: "unix:path=/run/user/1000/bus" })),
    "/run/user/1000/bus",
  );
  equal(
    sessionBusPath(env({
      DBUS_SESSION_BUS_ADDRESS: "tcp:host=x,port=1;unix:guid=abc,path=/tmp/a%2cb%20c",
    })),
    "/tmp/a,b c",
  );
  equal(sessionBusPath(env({ DBUS_SESSION_BUS_ADDRESS: "unix:abstract=/tmp/dbus-x" })), null);
  equal(sessionBusPath(env({ DBUS_SESSION_BUS_ADDRESS: "unix:path=%zz" })), null);
  equal(sessionBusPath(env({ XDG_RUNTIME_DIR: "/run/user/7" })), "/run/user/7/bus");
  equal(sessionBusPath(env({})), null);
});
