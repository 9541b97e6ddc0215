/**
 * {@linkcode WindowsCredentialStore} on Linux/macOS: the chunk encoding as pure functions, then
 * the whole store (the store contract included) over the real wrapper (`CredentialManager`) on a
 * FAKE advapi32 (`test/fixtures/fake_advapi32.ts`), which decodes every `CREDENTIALW` at the x64
 * offsets and enforces the 2,560-byte blob cap. Each fake test's name says what the fake stands
 * in for; the real-OS tests are `test/store_windows_credential_manager_test.ts` and
 * `test/windows/`, run under Wine by `deno task test:windows` and on windows-latest.
 */

import { StoreError } from "../errors.ts";
import { CRED_MAX_CREDENTIAL_BLOB_SIZE, CredentialManager } from "../../ffi/windows/advapi32.ts";
import { FakeAdvapi32 } from "../../test/fixtures/fake_advapi32.ts";
import { assertStoreError, runStoreContract, same } from "../../test/store_contract.ts";
import { ACCESS_ITEM, REFRESH_ITEM, SERVICE } from "./store.ts";
import {
  CHUNK_HEADER_MAGIC,
  chunkTarget,
  formatHeader,
  joinChunks,
  MAX_CHUNKS,
  needsChunking,
  parseHeader,
  READ_ATTEMPTS,
  sha256Hex,
  splitChunks,
  WindowsCredentialStore,
} from "./windows_credential_manager.ts";

function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

/** The fake stands in for Credential Manager itself; the real one runs under Wine
 * (`deno task test:windows`) and on the windows-latest runners. */
const FAKE = "windows credential store (fake advapi32 standing in for Credential Manager)";
/** Neither Windows nor Wine can be made to lose GetLastError's code; only the fake can. */
/** Seen under Wine only, where each credential is a registry key. */
const KEY_DELETED =
  "windows credential store (fake advapi32 standing in for Wine's registry-backed Credential Manager, ERROR_KEY_DELETED)";
const LOST = "windows credential store (fake advapi32 standing in for a lost GetLastError code)";
const PURE = "windows credential store chunk encoding (pure)";
const BASE = `${SERVICE}/${ACCESS_ITEM}`;

function fakeStore(fake = new FakeAdvapi32(), service?: string) {
  const store = new WindowsCredentialStore({ api: new CredentialManager(fake.symbols), service });
  return { fake, store };
}

/** `n` bytes of printable ASCII that differ position by position. */
function ascii(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(33 + ((i * 7 + (i >> 6)) % 94));
  return s;
}

Deno.test(`${PURE}: what goes through a header, and how values split and join`, () => {
  same(needsChunking(new Uint8Array(CRED_MAX_CREDENTIAL_BLOB_SIZE)), true, "starts with NUL");
  same(needsChunking(new Uint8Array(CRED_MAX_CREDENTIAL_BLOB_SIZE).fill(65)), false, "2560 fits");
  same(needsChunking(new Uint8Array(CRED_MAX_CREDENTIAL_BLOB_SIZE + 1).fill(65)), true, "2561");
  same(needsChunking(new Uint8Array()), true, "empty: never an empty blob");
  same(needsChunking(new Uint8Array([65])), false, "1 byte");

  const bytes = new TextEncoder().encode("é".repeat(8 * 1024)); // 16 KiB, 2-byte characters
  const chunks = splitChunks(bytes);
  same(chunks.length, 7, "16384 bytes / 2560 per chunk");
  assert(chunks.every((c) => c.length <= CRED_MAX_CREDENTIAL_BLOB_SIZE));
  same(chunks[6].length, 16384 - 6 * 2560, "the last chunk holds the rest");
  const joined = joinChunks(chunks);
  same(new TextDecoder().decode(joined), "é".repeat(8 * 1024), "join(split(x)) = x");
  same(splitChunks(new Uint8Array()).length, 0, "nothing to split");
  same(chunkTarget("svc/item", "b", 3), "svc/item/b3", "chunk target name");
});

Deno.test(`${PURE}: headers round-trip, and anything else starting with NUL is corrupt`, async () => {
  const sha256 = await sha256Hex(new Uint8Array([1, 2, 3]));
  same(sha256.length, 64, "hex sha256");
  const header = { slot: "b" as const, count: 2, bytes: 4700, sha256 };
  const blob = formatHeader(header);
  same(blob[0], 0, "a header starts with NUL");
  same(new TextDecoder().decode(blob).startsWith(CHUNK_HEADER_MAGIC), true, "magic");
  same(JSON.stringify(parseHeader(blob, BASE)), JSON.stringify(header), "round trip");
  same(parseHeader(new TextEncoder().encode("eyJhbGciOi"), BASE), null, "a plain value");
  same(
    JSON.stringify(parseHeader(formatHeader({ slot: "a", count: 0, bytes: 0, sha256 }), BASE)),
    JSON.stringify({ slot: "a", count: 0, bytes: 0, sha256 }),
    "the empty value",
  );
  const bad = [
    "\0",
    "\0agent-runner-auth chunks v2 slot=a count=1 bytes=1 sha256=" + sha256,
    "\0agent-runner-auth chunks v1 slot=c count=1 bytes=1 sha256=" + sha256,
    "\0agent-runner-auth chunks v1 slot=a count=2 bytes=1 sha256=" + sha256, // count ≠ ⌈bytes/2560⌉
    `\0agent-runner-auth chunks v1 slot=a count=${MAX_CHUNKS + 1} bytes=${
      (MAX_CHUNKS + 1) * 2560
    } sha256=${sha256}`,
    "\0agent-runner-auth chunks v1 slot=a count=1 bytes=1 sha256=XYZ",
  ];
  for (const text of bad) {
    let error: unknown;
    try {
      parseHeader(new TextEncoder().encode(text), BASE);
    } catch (e) {
      error = e;
    }
    assert(error instanceof StoreError && error.failure === "corrupt", JSON.stringify(text));
    assert(error.message.includes(`cmdkey /delete:${BASE}`), error.message);
  }
});

Deno.test(`${FAKE}: keeps the store contract`, async (t) => {
  const fake = new FakeAdvapi32();
  await runStoreContract(t, () => fakeStore(fake).store);
  same(fake.targets().join(), "", "the contract left no credential behind");
  same(fake.liveAllocations, 0, "every native block was freed");
});

Deno.test(`${FAKE}: chunking of a 16 KB value: base header + 7 chunks of at most 2,560 bytes`, async () => {
  const { fake, store } = fakeStore();
  const value = ascii(16 * 1024);
  await store.set(ACCESS_ITEM, value);
  const targets = fake.targets();
  same(targets.length, 8, targets.join());
  for (let i = 1; i <= 7; i++) assert(targets.includes(`${BASE}/a${i}`), `chunk a${i}`);
  const header = parseHeader(fake.credential(BASE)!.blob, BASE)!;
  same(header.count, 7, "count");
  same(header.bytes, 16 * 1024, "bytes");
  same(header.sha256, await sha256Hex(new TextEncoder().encode(value)), "checksum");
  assert(targets.every((t) => fake.credential(t)!.blob.length <= 2560));
  same(fake.credential(`${BASE}/a1`)!.userName, ACCESS_ITEM, "chunks carry the item as user");
  same(await store.get(ACCESS_ITEM), value, "joined back");
});

Deno.test(`${FAKE}: a value of 2,560 bytes is one plain credential, 2,561 is chunked`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, ascii(2560));
  same(fake.targets().join(), BASE, "one credential");
  same(new TextDecoder().decode(fake.credential(BASE)!.blob), ascii(2560), "stored as is");
  await store.set(ACCESS_ITEM, ascii(2561));
  same(fake.targets().length, 3, "header + 2 chunks");
  same(await store.get(ACCESS_ITEM), ascii(2561), "2561");
});

Deno.test(`${FAKE}: stale chunks are removed when a value shrinks, and slots alternate`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, ascii(16 * 1024)); // slot a, 7 chunks
  await store.set(ACCESS_ITEM, ascii(6000)); // slot b, 3 chunks; all of slot a removed
  same(
    fake.targets().join(),
    [BASE, `${BASE}/b1`, `${BASE}/b2`, `${BASE}/b3`].join(),
    "only the new set is left",
  );
  same(await store.get(ACCESS_ITEM), ascii(6000), "the shorter value");
  await store.set(ACCESS_ITEM, ascii(5200)); // back to slot a
  same(fake.targets().join(), [BASE, `${BASE}/a1`, `${BASE}/a2`, `${BASE}/a3`].join(), "slot a");
  await store.set(ACCESS_ITEM, "short");
  same(fake.targets().join(), BASE, "a plain value leaves no chunk");
  same(await store.get(ACCESS_ITEM), "short", "plain");
  same(await store.delete(ACCESS_ITEM), true, "delete");
  same(fake.targets().join(), "", "nothing left");
});

Deno.test(`${FAKE}: chunks a crash left behind are removed by the next write or delete`, async () => {
  const { fake, store } = fakeStore();
  fake.put(`${BASE}/a9`, new Uint8Array([1])); // orphan from an interrupted write
  fake.put(`${BASE}/b1`, new Uint8Array([1]));
  fake.put(`${SERVICE}/${ACCESS_ITEM}x/a1`, new Uint8Array([1])); // another item's: kept
  await store.set(ACCESS_ITEM, "v");
  same(fake.targets().join(), [BASE, `${SERVICE}/${ACCESS_ITEM}x/a1`].join(), "orphans gone");
  fake.put(`${BASE}/a1`, new Uint8Array([1]));
  same(await store.delete(ACCESS_ITEM), true, "delete");
  same(fake.targets().join(), `${SERVICE}/${ACCESS_ITEM}x/a1`, "delete clears chunks too");
  fake.put(`${BASE}/a1`, new Uint8Array([1]));
  same(await store.delete(ACCESS_ITEM), false, "no item, but its orphan chunk goes");
  same(fake.targets().join(), `${SERVICE}/${ACCESS_ITEM}x/a1`, "orphan removed");
});

Deno.test(`${FAKE}: a write that fails before its header leaves the old value readable`, async () => {
  const { fake, store } = fakeStore();
  const old = ascii(7000);
  await store.set(ACCESS_ITEM, old); // slot a
  // The header write fails (as a crash would stop there): chunks of slot b exist, header is old.
  fake.failNext("CredWriteW", 5, new RegExp(`^${BASE}$`));
  await assertStoreError(store.set(ACCESS_ITEM, ascii(9000)), "failed");
  same(await store.get(ACCESS_ITEM), old, "the old value, complete");
  await store.set(ACCESS_ITEM, ascii(9000));
  same(await store.get(ACCESS_ITEM), ascii(9000), "the next write succeeds");
  same(fake.targets().length, 5, "header + 4 chunks, no leftovers of either attempt");
});

Deno.test(`${FAKE}: a reader racing a writer re-reads the header instead of returning a mix`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, ascii(7000)); // slot a
  const before = fake.snapshot();
  await store.set(ACCESS_ITEM, ascii(12000)); // slot b, slot a removed
  const after = fake.snapshot();
  fake.restore(before);
  // The reader reads the old header (slot a), then the writer finishes before it reads a1.
  let swapped = false;
  fake.onCall = ({ fn, target }) => {
    if (!swapped && fn === "CredReadW" && target === `${BASE}/a1`) {
      swapped = true;
      fake.restore(after);
    }
  };
  same(await store.get(ACCESS_ITEM), ascii(12000), "the new value, read after a retry");
  assert(swapped);
});

Deno.test(`${FAKE}: chunks that stay inconsistent are "corrupt", never a cut value`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, ascii(7000));
  fake.put(`${BASE}/a2`, new TextEncoder().encode(ascii(2560).toLowerCase())); // wrong bytes
  const reads = () => fake.calls.filter((c) => c.fn === "CredReadW" && c.target === BASE).length;
  const start = reads();
  const error = await assertStoreError(store.get(ACCESS_ITEM), "corrupt");
  same(reads() - start, READ_ATTEMPTS, "the header was read again before giving up");
  assert(error.message.includes("cmdkey /delete:"), error.message);
  fake.remove(`${BASE}/a3`);
  await assertStoreError(store.get(ACCESS_ITEM), "corrupt");
});

Deno.test(`${FAKE}: a credential another program wrote is "corrupt", not a token`, async () => {
  const { fake, store } = fakeStore();
  fake.put(BASE, new Uint8Array([0xff, 0xfe, 0x41])); // not UTF-8
  const error = await assertStoreError(store.get(ACCESS_ITEM), "corrupt");
  assert(error.message.includes("did not write it"), error.message);
  fake.put(BASE, new Uint8Array([0, 1, 2])); // NUL first, not our header
  await assertStoreError(store.get(ACCESS_ITEM), "corrupt");
  await store.set(ACCESS_ITEM, "replaced"); // a write replaces it
  same(await store.get(ACCESS_ITEM), "replaced", "after overwriting the foreign data");
});

Deno.test(`${FAKE}: values starting with NUL and the empty value go through a header`, async () => {
  const { fake, store } = fakeStore();
  await store.set(REFRESH_ITEM, "\0starts with NUL");
  same(await store.get(REFRESH_ITEM), "\0starts with NUL", "NUL-first value");
  await store.set(REFRESH_ITEM, "");
  same(await store.get(REFRESH_ITEM), "", "empty value");
  same(fake.targets().join(), `${SERVICE}/${REFRESH_ITEM}`, "empty: a header, no chunk");
});

Deno.test(`${FAKE}, and for an SSH logon: over SSH every operation is StoreError "unavailable" (1312)`, async () => {
  const { fake, store } = fakeStore();
  fake.networkLogon = true;
  const error = await assertStoreError(store.get(ACCESS_ITEM), "unavailable");
  assert(error.message.includes("1312"), error.message);
  await assertStoreError(store.set(ACCESS_ITEM, "x"), "unavailable");
  await assertStoreError(store.delete(ACCESS_ITEM), "unavailable");
});

Deno.test(`${FAKE}: a failed read is an error, never "no token"`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, "v");
  fake.failNext("CredReadW", 5);
  await assertStoreError(store.get(ACCESS_ITEM), "failed");
  fake.clobberLastError = true;
  fake.failNext("CredReadW", 5);
  await assertStoreError(store.get(ACCESS_ITEM), "failed");
  same(await store.get(ACCESS_ITEM), "v", "the item is still there");
});

Deno.test(`${LOST}: a write, a rewrite, a chunked write and deletes still work, no probe left`, async () => {
  const { fake, store } = fakeStore();
  fake.clobberLastError = true;
  // The plain write used to store the credential and then throw from the chunk cleanup
  // ("CredEnumerateW failed … GetLastError returned 0"), and deleting an absent item threw too.
  await store.set(ACCESS_ITEM, "plain");
  same(await store.get(ACCESS_ITEM), "plain", "after a plain write");
  same(await store.delete(REFRESH_ITEM), false, "delete of an absent item");
  await store.set(ACCESS_ITEM, ascii(6000));
  same(await store.get(ACCESS_ITEM), ascii(6000), "after a chunked write");
  await store.set(ACCESS_ITEM, "short again");
  same(fake.targets().join(), BASE, "the chunks and every probe are gone");
  same(await store.delete(ACCESS_ITEM), true, "delete of a present item");
  same(await store.delete(ACCESS_ITEM), false, "second delete");
  same(fake.targets().join(), "", "nothing left");
  same(fake.liveAllocations, 0, "every native block was freed");
});

Deno.test(`${LOST}: when even the probe cannot be written, the cleanup fails loudly`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, "v");
  fake.clobberLastError = true;
  fake.failNext("CredWriteW", 5, /agent-runner-probe/);
  const error = await assertStoreError(store.set(ACCESS_ITEM, "w"), "failed");
  assert(error.message.includes("GetLastError returned 0"), error.message);
  same(await store.get(ACCESS_ITEM), "w", "the value itself was written");
});

Deno.test(`${KEY_DELETED}: a chunk deleted under a reader is re-read, not an error`, async () => {
  const { fake, store } = fakeStore();
  await store.set(ACCESS_ITEM, ascii(6000));
  fake.failNext("CredReadW", 1018, /\/[ab]2$/); // ERROR_KEY_DELETED on the second chunk
  same(await store.get(ACCESS_ITEM), ascii(6000), "read again from the header");
});

Deno.test(`${FAKE}: the service prefix is injectable and names are checked`, async () => {
  const fake = new FakeAdvapi32();
  const { store } = fakeStore(fake, "agent-runner-auth-test-1234");
  await store.set(`${ACCESS_ITEM}@work`, "w");
  same(fake.targets().join(), `agent-runner-auth-test-1234/${ACCESS_ITEM}@work`, "target");
  for (const bad of ["", "a/b", "a*", "a\0"]) {
    let error: unknown;
    try {
      await store.get(bad);
    } catch (e) {
      error = e;
    }
    assert(error instanceof TypeError, `item ${JSON.stringify(bad)}`);
  }
  let error: unknown;
  try {
    fakeStore(fake, "svc/x");
  } catch (e) {
    error = e;
  }
  assert(error instanceof TypeError, "service with a slash");
});

Deno.test(`${FAKE}: a lone surrogate is refused instead of being stored as U+FFFD`, async () => {
  const { fake, store } = fakeStore();
  let error: unknown;
  try {
    await store.set(ACCESS_ITEM, "\ud83d");
  } catch (e) {
    error = e;
  }
  assert(error instanceof TypeError, String(error));
  same(fake.targets().length, 0, "nothing written");
});

Deno.test({
  name: "windows credential store: off Windows the default store is StoreError unavailable",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const store = new WindowsCredentialStore();
    same(store.backend, "windows-credential-manager", "backend name");
    await assertStoreError(store.get(ACCESS_ITEM), "unavailable");
  },
});
