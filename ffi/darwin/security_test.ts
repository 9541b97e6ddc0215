/**
 * The Keychain wrapper on Linux/Windows: the OSStatus table as a pure function, then the wrapper
 * over a FAKE Security framework + CoreFoundation (`test/fixtures/fake_security.ts`) that checks
 * every CF object it is handed is alive and counts retains and releases. Real macOS is untested
 * here; the test names say so, and `test/store_macos_keychain_test.ts` has the real-OS tests.
 */

import { StoreError } from "../errors.ts";
import { FakeSecurity } from "../../test/fixtures/fake_security.ts";
import {
  canShowDialogs,
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
    [errSecInteractionNotAllowed, "locked", "needs a dialog this session cannot show"],
    [-25315, "locked", "needs a dialog this session cannot show"],
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

/** Lets the fake's late answer and the wrapper's clean-up run (bounded turns, no clock). */
async function settle(fake: FakeSecurity): Promise<void> {
  for (let i = 0; i < 100 && fake.liveObjects > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

Deno.test(`${FAKE}: without a GUI session (SSH, $CI) a call held by a dialog times out at the short bound, and is cleaned up when it returns (issue 11 #7)`, async () => {
  const fake = new FakeSecurity();
  let noticed = 0;
  const keychain = new Keychain(fake.symbols, {
    timeoutMs: 50,
    dialogs: () => false,
    dialogNoticeMs: 1,
    onDialogWait: () => noticed++,
  });
  fake.put("svc", "acct", bytes("v"));
  const dialog = fake.holdNext("SecItemCopyMatching");
  const error = await rejects(keychain.find("svc", "acct"), StoreError);
  assertEquals(error.failure, "timeout");
  assert(error.message.includes("50 ms") && error.message.includes("cannot show"), error.message);
  assertEquals(noticed, 0, "no dialog can be up: nothing said about one");
  assert(fake.liveObjects > 0, "the query stays alive while the native call still runs");
  dialog.release(); // the user answers at last; the late result is released, not leaked
  await settle(fake);
  assertEquals(fake.liveObjects, 0);
});

Deno.test(`${FAKE}: with a GUI session a call held by a dialog gets human time, says once that it waits, and reads the item once it is answered (issue 11 #7)`, async () => {
  const fake = new FakeSecurity();
  let noticed = 0;
  let said!: () => void;
  const saying = new Promise<void>((resolve) => said = resolve);
  const keychain = new Keychain(fake.symbols, {
    timeoutMs: 20, // would long have expired: the dialog bound applies instead
    dialogs: () => true,
    dialogNoticeMs: 60,
    onDialogWait: () => (noticed++, said()),
  });
  fake.put("svc", "acct", bytes("v"));
  const dialog = fake.holdNext("SecItemCopyMatching");
  const reading = keychain.find("svc", "acct");
  await dialog.shown;
  await saying; // 60 ms into the dialog, three times the short bound
  assertEquals(fake.pendingDialogs, 1, "still waiting for the person");
  dialog.release(); // Allow
  assertEquals(text(await reading), "v");
  // A second dialog in the same process is not announced again.
  const again = fake.holdNext("SecItemCopyMatching");
  const second = keychain.find("svc", "acct");
  await again.shown;
  again.release();
  assertEquals(text(await second), "v");
  assertEquals(noticed, 1, "said once");
  assertEquals(fake.liveObjects, 0);
});

Deno.test(`${FAKE}: with a GUI session a dialog nobody answers ends at the dialog bound, with its own message; Deny is errSecUserCanceled (issue 11 #7)`, async () => {
  const fake = new FakeSecurity();
  const keychain = new Keychain(fake.symbols, { dialogs: () => true, dialogTimeoutMs: 30 });
  fake.put("svc", "acct", bytes("v"));
  const unanswered = fake.holdNext("SecItemCopyMatching");
  const error = await rejects(keychain.find("svc", "acct"), StoreError);
  assertEquals(error.failure, "timeout");
  assert(error.message.includes("No answer to the macOS Keychain dialog"), error.message);
  unanswered.release();
  const denied = fake.holdNext("SecItemUpdate");
  const updating = keychain.update("svc", "acct", bytes("w"));
  await denied.shown;
  denied.release(errSecUserCanceled);
  const deny = await rejects(updating, KeychainError);
  assertEquals(deny.status, errSecUserCanceled);
  await settle(fake);
  assertEquals(fake.liveObjects, 0);
});

Deno.test(`${FAKE}: whether a dialog can be shown: a GUI security session, not over SSH, not with $CI (issue 11 #7)`, () => {
  const fake = new FakeSecurity();
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assertEquals(canShowDialogs(fake.symbols, env({})), true, "desktop session");
  assertEquals(canShowDialogs(fake.symbols, env({ CI: "true" })), false, "$CI");
  assertEquals(canShowDialogs(fake.symbols, env({ SSH_CONNECTION: "1 2 3 4" })), false, "ssh");
  assertEquals(canShowDialogs(fake.symbols, env({ SSH_TTY: "/dev/ttys001" })), false, "ssh tty");
  fake.graphicAccess = false;
  assertEquals(canShowDialogs(fake.symbols, env({})), false, "no window server access");
  const old: SecurityNative = {
    cf: fake.symbols.cf,
    sec: { ...fake.symbols.sec, SessionGetInfo: null },
  };
  fake.graphicAccess = true;
  assertEquals(canShowDialogs(old, env({})), false, "no SessionGetInfo: assume none");
});

Deno.test(`${FAKE}: every query names the file-based keychain (kSecUseDataProtectionKeychain: false), and without the key (before macOS 10.15) none is sent (issue 11 #7)`, async () => {
  const fake = new FakeSecurity(); // it refuses any query without the key set to false
  const keychain = new Keychain(fake.symbols, { dialogs: () => false });
  assertEquals(await keychain.add("svc", "acct", bytes("a")), true);
  assertEquals(text(await keychain.find("svc", "acct")), "a");
  assertEquals(await keychain.update("svc", "acct", bytes("b")), true);
  assertEquals(await keychain.delete("svc", "acct"), true);
  const stripped = new FakeSecurity();
  const old: SecurityNative = {
    cf: stripped.symbols.cf,
    sec: { ...stripped.symbols.sec, kSecUseDataProtectionKeychain: null },
  };
  let refused = "";
  try {
    await new Keychain(old, { dialogs: () => false }).find("svc", "acct");
  } catch (error) {
    refused = String(error);
  }
  assert(refused.includes("kSecUseDataProtectionKeychain"), "the strict fake notices its absence");
  assertEquals(stripped.liveObjects, 0);
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
