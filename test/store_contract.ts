/**
 * The behaviour every {@linkcode TokenStore} backend owes the token layer, as one suite to run
 * against each backend (after git-credential-manager's shared credential-store tests):
 *
 * ```ts
 * Deno.test("memory store", (t) => runStoreContract(t, () => new MemoryStore()));
 * ```
 *
 * It writes and deletes the default profile's two items ({@linkcode ACCESS_ITEM},
 * {@linkcode REFRESH_ITEM}), so only ever point it at a throw-away store (a test fixture), never at
 * a real user's keychain. Values are compared exactly: a store may not trim, re-encode or cut.
 *
 * @module
 */

import { StoreError, type StoreFailure } from "../src/errors.ts";
import { ACCESS_ITEM, REFRESH_ITEM, type TokenStore } from "../src/store/store.ts";

/** Sizes in UTF-8 bytes: tiny, Windows' 2,560-byte blob cap and one past it, Cognito's ~4.7 KB of
 * tokens, and 16 KB. */
export const SIZES = [1, 2, 255, 2560, 2561, 4700, 16 * 1024];

/** Values a careless store would trim, split at a line break or mangle in a C string. */
export const AWKWARD = [
  "🔑", // outside the BMP: a surrogate pair in JS, 4 bytes in UTF-8
  "鍵とトークン", // CJK
  "line one\nline two", // a newline inside
  "crlf\r\nend",
  "  leading and trailing spaces  ",
  "\ttab\t",
  "ends with a newline\n",
  "\n",
  " ",
  'quote" backslash\\ percent% dollar$ backtick`',
  "ééé ñ ü ß ø å",
  "a.b.c-_~+/=", // JWT-ish punctuation
];

/**
 * Runs the contract as steps of `t`. `makeStore` is called once per step: a fresh store for
 * in-memory backends, a new handle on the same keychain for real ones (each step clears the two
 * items before and after itself). Needs whatever permissions the store needs (for the Secret
 * Service: `--allow-ffi --allow-env`).
 */
export async function runStoreContract(
  t: Deno.TestContext,
  makeStore: () => Promise<TokenStore> | TokenStore,
): Promise<void> {
  const step = (name: string, body: (store: TokenStore) => Promise<void>) =>
    t.step(name, async () => {
      const store = await makeStore();
      await clear(store);
      try {
        await body(store);
      } finally {
        await clear(store);
      }
    });

  await step("a missing item reads as null and deletes as false", async (store) => {
    same(await store.get(ACCESS_ITEM), null, "get of a missing item");
    same(await store.delete(ACCESS_ITEM), false, "delete of a missing item");
  });

  await step("values from 1 byte to 16 KB round-trip byte for byte", async (store) => {
    for (const bytes of SIZES) {
      const value = asciiValue(bytes);
      await store.set(ACCESS_ITEM, value);
      same(await store.get(ACCESS_ITEM), value, `a ${bytes}-byte value`);
    }
    // 16 KB of two-byte characters, so a store that counts UTF-16 units instead of bytes shows.
    const wide = "é".repeat(8 * 1024);
    await store.set(ACCESS_ITEM, wide);
    same(await store.get(ACCESS_ITEM), wide, "16 KB of two-byte UTF-8");
  });

  await step("unicode, line breaks and spaces are kept exactly", async (store) => {
    for (const value of AWKWARD) {
      await store.set(REFRESH_ITEM, value);
      same(await store.get(REFRESH_ITEM), value, `the value ${JSON.stringify(value)}`);
    }
  });

  await step("set replaces the value in place", async (store) => {
    await store.set(ACCESS_ITEM, asciiValue(4700));
    await store.set(ACCESS_ITEM, "short");
    same(await store.get(ACCESS_ITEM), "short", "a shorter value after a longer one");
    await store.set(ACCESS_ITEM, "second");
    same(await store.get(ACCESS_ITEM), "second", "the second value");
    same(await store.delete(ACCESS_ITEM), true, "delete after two sets");
    same(await store.get(ACCESS_ITEM), null, "get after deleting an overwritten item");
  });

  await step("delete removes the item; a second delete is false", async (store) => {
    await store.set(ACCESS_ITEM, "x");
    same(await store.delete(ACCESS_ITEM), true, "delete of a present item");
    same(await store.get(ACCESS_ITEM), null, "get after delete");
    same(await store.delete(ACCESS_ITEM), false, "second delete");
  });

  await step("the access and refresh items are independent", async (store) => {
    await store.set(REFRESH_ITEM, "refresh-1");
    await store.set(ACCESS_ITEM, "access-1");
    same(await store.get(REFRESH_ITEM), "refresh-1", "refresh after setting access");
    await store.set(ACCESS_ITEM, "access-2");
    same(await store.get(REFRESH_ITEM), "refresh-1", "refresh after replacing access");
    same(await store.delete(ACCESS_ITEM), true, "delete access");
    same(await store.get(REFRESH_ITEM), "refresh-1", "refresh after deleting access");
    same(await store.get(ACCESS_ITEM), null, "access after deleting it");
  });

  await step("a store whose items are all missing is usable", async (store) => {
    await store.assertUsable?.();
    same(await store.get(ACCESS_ITEM), null, "assertUsable leaves no item behind");
  });
}

/**
 * Awaits `promise`, which must reject with a `StoreError` of `failure`; returns the error.
 * Also checks the message is one line, as the CLI prints it on stderr as is.
 */
export async function assertStoreError(
  promise: Promise<unknown>,
  failure: StoreFailure,
): Promise<StoreError> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    if (!(error instanceof StoreError)) throw new Error(`Expected a StoreError, got: ${error}`);
    if (error.failure !== failure) {
      throw new Error(`Expected StoreError "${failure}", got "${error.failure}": ${error.message}`);
    }
    if (error.message.includes("\n")) throw new Error(`Not one line: ${error.message}`);
    return error;
  }
  throw new Error(
    `Expected StoreError "${failure}", but it resolved to ${JSON.stringify(outcome)}`,
  );
}

/** Throws unless `actual === expected`; long values are summarised, never dumped. */
export function same<T>(actual: T, expected: T, what: string): void {
  if (actual === expected) return;
  throw new Error(`${what}: expected ${describe(expected)}, got ${describe(actual)}`);
}

function describe(value: unknown): string {
  if (typeof value !== "string" || value.length <= 60) return JSON.stringify(value);
  return `a ${value.length}-character string starting ${JSON.stringify(value.slice(0, 20))}`;
}

/** A printable value of exactly `bytes` UTF-8 bytes whose every position differs from its
 * neighbours, so a cut, a shift or a repeated chunk is caught. */
export function asciiValue(bytes: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
  let value = "";
  for (let i = 0; i < bytes; i++) value += alphabet[(i * 7 + Math.floor(i / 64)) % alphabet.length];
  return value;
}

async function clear(store: TokenStore): Promise<void> {
  await store.delete(ACCESS_ITEM);
  await store.delete(REFRESH_ITEM);
}
