/**
 * {@linkcode MacosKeychainStore} on Linux/Windows: the whole store, the store contract included,
 * over the real wrapper (`Keychain`) on a FAKE Security framework + CoreFoundation
 * (`test/fixtures/fake_security.ts`). Real macOS is untested here: the names say so, and
 * `test/store_macos_keychain_test.ts` has the real-OS tests.
 */

import { StoreError } from "../errors.ts";
import {
  errSecDuplicateItem,
  errSecInteractionNotAllowed,
  type GenericPasswordApi,
  Keychain,
  KeychainError,
} from "../../ffi/darwin/security.ts";
import { FakeSecurity } from "../../test/fixtures/fake_security.ts";
import { assertStoreError, runStoreContract, same } from "../../test/store_contract.ts";
import { MacosKeychainStore } from "./macos_keychain.ts";
import { ACCESS_ITEM, REFRESH_ITEM, SERVICE } from "./store.ts";

function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

const FAKE = "macos keychain store (fake Security, real OS untested here)";

/** A store over the fake; no Keychain dialog can be shown unless `dialogs` says so. */
function fakeStore(
  fake = new FakeSecurity(),
  service?: string,
  timeoutMs?: number,
  dialogs = false,
) {
  const api = new Keychain(fake.symbols, { timeoutMs, dialogs: () => dialogs });
  const store = new MacosKeychainStore({ api, service });
  return { fake, store };
}

Deno.test(`${FAKE}: keeps the store contract`, async (t) => {
  const fake = new FakeSecurity();
  await runStoreContract(t, () => fakeStore(fake).store);
  same(fake.names().join(), "", "the contract left no item behind");
  same(fake.liveObjects, 0, "every CF object was released");
});

Deno.test(`${FAKE}: items are generic passwords under service agent-runner-auth, UTF-8`, async () => {
  const { fake, store } = fakeStore();
  same(store.backend, "macos-keychain", "backend");
  await store.set(ACCESS_ITEM, "é🔑");
  const item = fake.item(SERVICE, ACCESS_ITEM);
  assert(item !== undefined, fake.names().join());
  same(Array.from(item.data).join(), "195,169,240,159,148,145", "UTF-8 bytes");
});

Deno.test(`${FAKE}: set updates the existing item in place, never delete + add`, async () => {
  const { fake, store } = fakeStore();
  await store.set(REFRESH_ITEM, "first"); // update (not found) then add
  const id = fake.item(SERVICE, REFRESH_ITEM)!.id;
  await store.set(REFRESH_ITEM, "second");
  await store.set(REFRESH_ITEM, "x".repeat(16 * 1024));
  same(fake.item(SERVICE, REFRESH_ITEM)!.id, id, "the same item (its access list survives)");
  same(await store.get(REFRESH_ITEM), "x".repeat(16 * 1024), "value");
  const writes = fake.calls.filter((c) => c.fn !== "SecItemCopyMatching").map((c) => c.fn);
  same(
    writes.join(),
    "SecItemUpdate,SecItemAdd,SecItemUpdate,SecItemUpdate",
    "update first; add only when missing; no delete",
  );
});

Deno.test(`${FAKE}: an add that loses a race to another writer updates that item`, async () => {
  const fake = new FakeSecurity();
  const real = new Keychain(fake.symbols);
  // Between our update (not found) and our add, another process adds the item.
  const racing: GenericPasswordApi = {
    find: (s, a) => real.find(s, a),
    update: (s, a, d) => real.update(s, a, d),
    delete: (s, a) => real.delete(s, a),
    add: (s, a, d) => {
      fake.put(s, a, new TextEncoder().encode("theirs"));
      return real.add(s, a, d);
    },
  };
  const store = new MacosKeychainStore({ api: racing });
  await store.set(ACCESS_ITEM, "ours");
  same(await store.get(ACCESS_ITEM), "ours", "our value, in their item");
  same(errSecDuplicateItem, -25299, "the add saw errSecDuplicateItem");
});

Deno.test(`${FAKE}: a locked keychain is StoreError "locked", explained, never "no token"`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, "v");
  fake.failNext("SecItemCopyMatching", errSecInteractionNotAllowed);
  const error = await assertStoreError(store.get(ACCESS_ITEM), "locked");
  assert(error instanceof KeychainError && error.status === -25308, String(error));
  assert(error.message.includes("security unlock-keychain"), error.message);
  fake.failNext("SecItemUpdate", errSecInteractionNotAllowed);
  await assertStoreError(store.set(ACCESS_ITEM, "w"), "locked");
  same(await store.get(ACCESS_ITEM), "v", "unchanged");
});

Deno.test(`${FAKE}: an item that is not UTF-8 is "corrupt", not a token`, async () => {
  const { fake, store } = fakeStore();
  fake.put(SERVICE, ACCESS_ITEM, new Uint8Array([0xff, 0xfe]));
  const error = await assertStoreError(store.get(ACCESS_ITEM), "corrupt");
  assert(error.message.includes("security delete-generic-password"), error.message);
  await store.set(ACCESS_ITEM, "replaced");
  same(await store.get(ACCESS_ITEM), "replaced", "a write replaces it");
});

Deno.test(`${FAKE}: without a GUI session a dialog nobody answers is StoreError "timeout" within the short bound`, async () => {
  const { fake, store } = fakeStore(undefined, undefined, 60);
  const dialog = fake.holdNext("SecItemCopyMatching");
  const error = await assertStoreError(store.get(ACCESS_ITEM), "timeout");
  assert(error.message.includes("AGENT_RUNNER_STORE_TIMEOUT_MS"), error.message);
  dialog.release();
  for (let i = 0; i < 100 && fake.liveObjects > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  same(fake.liveObjects, 0, "released once the native call returned");
});

Deno.test(`${FAKE}: with a GUI session a save held by the "allow access" dialog completes once it is answered (issue 11 #7)`, async () => {
  const { fake, store } = fakeStore(undefined, undefined, 10, true);
  await store.set(REFRESH_ITEM, "old");
  const dialog = fake.holdNext("SecItemUpdate");
  const saving = store.set(REFRESH_ITEM, "new");
  await dialog.shown;
  dialog.release();
  await saving;
  same(await store.get(REFRESH_ITEM), "new", "saved");
});

Deno.test(`${FAKE}: the service is injectable, so real-OS tests never touch real tokens`, async () => {
  const { fake, store } = fakeStore(undefined, "agent-runner-auth-test-1234");
  await store.set(`${ACCESS_ITEM}@work`, "w");
  same(fake.names().join(), `agent-runner-auth-test-1234/${ACCESS_ITEM}@work`, "names");
});

Deno.test(`${FAKE}: a lone surrogate is refused instead of being stored as U+FFFD`, async () => {
  const { fake, store } = fakeStore();
  let error: unknown;
  try {
    await store.set(ACCESS_ITEM, "a\udc00");
  } catch (e) {
    error = e;
  }
  assert(error instanceof TypeError, String(error));
  same(fake.calls.length, 0, "no Keychain call");
});

Deno.test({
  name: "macos keychain store: off macOS the default store is StoreError unavailable",
  ignore: Deno.build.os === "darwin",
  fn: async () => {
    const error = await assertStoreError(new MacosKeychainStore().get(ACCESS_ITEM), "unavailable");
    assert(error instanceof StoreError);
  },
});
