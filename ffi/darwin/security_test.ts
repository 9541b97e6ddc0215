/**
 * The Keychain wrapper on Linux/Windows: the OSStatus table as a pure function, then the wrapper
 * over a FAKE Security framework + CoreFoundation (`test/fixtures/fake_security.ts`) that checks
 * every CF object it is handed is alive and counts retains and releases. Real macOS is untested
 * here; the test names say so, and `test/store_macos_keychain_test.ts` has the real-OS tests.
 */

import { StoreError } from "../errors.ts";
import { FakeSecurity } from "../../test/fixtures/fake_security.ts";
import {
  errSecAuthFailed,
  errSecDuplicateItem,
  errSecInteractionNotAllowed,
  errSecItemNotFound,
  errSecMissingEntitlement,
  errSecNoSuchKeychain,
  errSecUserCanceled,
  Keychain,
  KeychainError,
  keychainError,
  loadSecurity,
  type SecurityNative,
} from "./security.ts";

function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}
function assertEquals<T>(actual: T, expected: T, message = ""): void {
  if (!Object.is(actual, expected)) {
    throw new Error(
      `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)} ${message}`.trim(),
    );
  }
}
async function rejects<E extends Error>(
  promise: Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}
const text = (bytes: Uint8Array | null) => bytes === null ? null : new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

const FAKE = "macos keychain wrapper (fake Security, real OS untested here)";
const PURE = "macos keychain OSStatus mapping (pure)";

Deno.test(`${PURE}: codes map to explained, one-line store errors keeping the number`, () => {
  const cases: [number, string, string][] = [
    [errSecInteractionNotAllowed, "locked", "cannot show the unlock dialog"],
    [-25315, "locked", "cannot show the unlock dialog"],
    [errSecAuthFailed, "locked", "password was wrong"],
    [errSecUserCanceled, "locked", "denied in the Keychain dialog"],
    [-25320, "locked", "dark wake"],
    [errSecNoSuchKeychain, "unavailable", "no usable default keychain"],
    [-25291, "unavailable", "no usable default keychain"],
    [-25307, "unavailable", "no usable default keychain"],
    [errSecMissingEntitlement, "unavailable", "entitlement"],
    [-26275, "corrupt", "decode"],
    [-25292, "failed", "read-only"],
    [-50, "failed", "security error -50"],
    [-99999, "failed", "OSStatus -99999"],
  ];
  for (const [status, failure, words] of cases) {
    const error = keychainError("read", status);
    assert(error instanceof StoreError && error instanceof KeychainError);
    assertEquals(error.failure, failure, `status ${status}`);
    assertEquals(error.status, status);
    assert(error.message.includes(`OSStatus ${status}`), error.message);
    assert(error.message.includes(words), `${status}: ${error.message}`);
    assert(!error.message.includes("\n"));
  }
  // The two "locked" causes users confuse are told apart by name and by advice.
  const noDialog = keychainError("read", errSecInteractionNotAllowed).message;
  const badPassword = keychainError("read", errSecAuthFailed).message;
  assert(noDialog.includes("errSecInteractionNotAllowed") && noDialog.includes("unlock-keychain"));
  assert(badPassword.includes("errSecAuthFailed") && !badPassword.includes("unlock-keychain"));
});

Deno.test(`${FAKE}: add, find, update in place and delete; every CF object released`, async () => {
  const fake = new FakeSecurity();
  const keychain = new Keychain(fake.symbols);
  assertEquals(await keychain.find("svc", "acct"), null, "missing");
  assertEquals(await keychain.add("svc", "acct", bytes("one 🔑")), true);
  const id = fake.item("svc", "acct")!.id;
  assertEquals(await keychain.add("svc", "acct", bytes("dup")), false, "errSecDuplicateItem");
  assertEquals(text(await keychain.find("svc", "acct")), "one 🔑");
  assertEquals(await keychain.update("svc", "acct", bytes("two")), true);
  assertEquals(fake.item("svc", "acct")!.id, id, "the same item, updated in place");
  assertEquals(text(await keychain.find("svc", "acct")), "two");
  assertEquals(
    await keychain.update("svc", "other", bytes("x")),
    false,
    "update of a missing item",
  );
  assertEquals(await keychain.delete("svc", "acct"), true);
  assertEquals(await keychain.delete("svc", "acct"), false);
  assertEquals(fake.liveObjects, 0, "strings, data, dictionaries and results all released");
  assertEquals(
    fake.calls.map((c) => c.fn).join(),
    "SecItemCopyMatching,SecItemAdd,SecItemAdd,SecItemCopyMatching,SecItemUpdate," +
      "SecItemCopyMatching,SecItemUpdate,SecItemDelete,SecItemDelete",
  );
});

Deno.test(`${FAKE}: an empty value and binary data round-trip`, async () => {
  const fake = new FakeSecurity();
  const keychain = new Keychain(fake.symbols);
  await keychain.add("svc", "empty", new Uint8Array());
  assertEquals((await keychain.find("svc", "empty"))?.length, 0, "empty data");
  const binary = new Uint8Array([0, 255, 1, 254]);
  await keychain.add("svc", "bin", binary);
  assertEquals(Array.from((await keychain.find("svc", "bin"))!).join(), "0,255,1,254");
  assertEquals(Array.from(binary).join(), "0,255,1,254", "the caller's buffer is left alone");
  assertEquals(fake.liveObjects, 0);
});

Deno.test(`${FAKE}: a read error is an error, never "no token"`, async () => {
  const fake = new FakeSecurity();
  const keychain = new Keychain(fake.symbols);
  fake.put("svc", "acct", bytes("v"));
  for (const status of [errSecInteractionNotAllowed, errSecAuthFailed, errSecUserCanceled, -50]) {
    fake.failNext("SecItemCopyMatching", status);
    const error = await rejects(keychain.find("svc", "acct"), KeychainError);
    assertEquals(error.status, status);
  }
  fake.failNext("SecItemDelete", errSecInteractionNotAllowed);
  assertEquals((await rejects(keychain.delete("svc", "acct"), KeychainError)).failure, "locked");
  fake.failNext("SecItemUpdate", errSecAuthFailed);
  await rejects(keychain.update("svc", "acct", bytes("w")), KeychainError);
  fake.failNext("SecItemAdd", errSecNoSuchKeychain);
  assertEquals(
    (await rejects(keychain.add("svc", "new", bytes("w")), KeychainError)).failure,
    "unavailable",
  );
  assertEquals(text(await keychain.find("svc", "acct")), "v", "nothing changed");
  assertEquals(fake.liveObjects, 0, "released on every error path");
});

Deno.test(`${FAKE}: a call that waits on a dialog times out, and is cleaned up when it returns`, async () => {
  const fake = new FakeSecurity();
  const keychain = new Keychain(fake.symbols, { timeoutMs: 50 });
  fake.put("svc", "acct", bytes("v"));
  const dialog = fake.holdNext("SecItemCopyMatching");
  const start = performance.now();
  const error = await rejects(keychain.find("svc", "acct"), StoreError);
  assertEquals(error.failure, "timeout");
  assert(performance.now() - start < 1000, "bounded");
  assert(error.message.includes("50 ms") && error.message.includes("dialog"), error.message);
  assert(fake.liveObjects > 0, "the query stays alive while the native call still runs");
  dialog.release(); // the user answers at last; the late result is released, not leaked
  await new Promise((resolve) => setTimeout(resolve, 10));
  assertEquals(fake.liveObjects, 0);
});

Deno.test(`${FAKE}: statics are dereferenced once and the callback structs passed as addresses`, async () => {
  // The fake's CFDictionaryCreate throws for an address that is not a live CF object, so passing
  // &kSecClass instead of kSecClass, or a dereferenced callback struct, fails here.
  const fake = new FakeSecurity();
  await new Keychain(fake.symbols).add("svc", "acct", bytes("x"));
  // And a wrapper that skipped the dereference is caught: hand it the variables' contents
  // directly as if they were the statics' addresses.
  const wrong: SecurityNative = {
    cf: fake.symbols.cf,
    sec: {
      ...fake.symbols.sec,
      kSecClass: new Deno.UnsafePointerView(fake.symbols.sec.kSecClass!).getPointer(0),
    },
  };
  let failed = false;
  try {
    await new Keychain(wrong).find("svc", "acct");
  } catch {
    failed = true;
  }
  assert(failed, "a constant used without its dereference is rejected by the fake");
});

Deno.test(`${FAKE}: CFData of the wrong type from a read is "corrupt", and released`, async () => {
  const fake = new FakeSecurity();
  const real = fake.symbols.cf.CFGetTypeID;
  const native: SecurityNative = {
    sec: fake.symbols.sec,
    cf: { ...fake.symbols.cf, CFGetTypeID: (p) => real(p) + 1n },
  };
  fake.put("svc", "acct", bytes("v"));
  const error = await rejects(new Keychain(native).find("svc", "acct"), KeychainError);
  assertEquals(error.failure, "corrupt");
  assertEquals(fake.liveObjects, 0);
});

Deno.test(`${FAKE}: names must be well-formed Unicode`, async () => {
  const fake = new FakeSecurity();
  await rejects(new Keychain(fake.symbols).find("svc", "\ud800"), TypeError);
  assertEquals(fake.liveObjects, 0, "the service string made first is released");
  assertEquals(errSecItemNotFound, -25300);
  assertEquals(errSecDuplicateItem, -25299);
});

Deno.test({
  name: "macos keychain wrapper: off macOS the real framework is StoreError unavailable",
  ignore: Deno.build.os === "darwin",
  fn: async () => {
    let error: unknown;
    try {
      loadSecurity();
    } catch (e) {
      error = e;
    }
    assert(error instanceof StoreError && error.failure === "unavailable", String(error));
    const viaApi = await rejects(new Keychain().find("svc", "acct"), StoreError);
    assertEquals(viaApi.failure, "unavailable");
  },
});
