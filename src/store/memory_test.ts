import { StoreError } from "../errors.ts";
import { assertStoreError, runStoreContract, same } from "../../test/store_contract.ts";
import { MemoryStore } from "./memory.ts";
import { ACCESS_ITEM, REFRESH_ITEM } from "./store.ts";

Deno.test("MemoryStore keeps the store contract", (t) =>
  runStoreContract(t, () => new MemoryStore()));

Deno.test("MemoryStore.failNext fails exactly the next call of that op, leaving items alone", async () => {
  const store = new MemoryStore({ [REFRESH_ITEM]: "r1" });
  store.failNext("set", new StoreError("timeout", "Secret Service did not answer"));
  await assertStoreError(store.set(REFRESH_ITEM, "r2"), "timeout");
  same(await store.get(REFRESH_ITEM), "r1", "the failed set wrote nothing");
  await store.set(REFRESH_ITEM, "r2");
  same(await store.get(REFRESH_ITEM), "r2", "the next set works");
});

Deno.test("MemoryStore.failNext queues per op and defaults to a failed StoreError", async () => {
  const store = new MemoryStore();
  store.failNext("get");
  store.failNext("get");
  await store.set(ACCESS_ITEM, "a"); // only get is armed
  await assertStoreError(store.get(ACCESS_ITEM), "failed");
  await assertStoreError(store.get(ACCESS_ITEM), "failed");
  same(await store.get(ACCESS_ITEM), "a", "third get");
});

Deno.test("a locked MemoryStore reads as empty and fails writes and assertUsable, like libsecret", async () => {
  const store = new MemoryStore({ [ACCESS_ITEM]: "a" });
  store.locked = true;
  same(await store.get(ACCESS_ITEM), null, "get in a locked store");
  await assertStoreError(store.assertUsable(), "locked");
  await assertStoreError(store.set(ACCESS_ITEM, "b"), "locked");
  store.locked = false;
  same(await store.get(ACCESS_ITEM), "a", "get after unlocking");
  await store.assertUsable();
});

Deno.test("MemoryStore records calls in order, without values", async () => {
  const store = new MemoryStore();
  await store.set(REFRESH_ITEM, "secret-r");
  await store.set(ACCESS_ITEM, "secret-a");
  await store.get(ACCESS_ITEM);
  same(
    JSON.stringify(store.calls),
    JSON.stringify([
      { op: "set", item: REFRESH_ITEM },
      { op: "set", item: ACCESS_ITEM },
      { op: "get", item: ACCESS_ITEM },
    ]),
    "call log",
  );
  same(
    JSON.stringify(store.snapshot()),
    JSON.stringify({ [REFRESH_ITEM]: "secret-r", [ACCESS_ITEM]: "secret-a" }),
    "snapshot",
  );
});
