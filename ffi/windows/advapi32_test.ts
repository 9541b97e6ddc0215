/**
 * The Credential Manager wrapper on Linux/macOS: the UTF-16LE helpers and the `CREDENTIALW`
 * encoding as pure functions, then the wrapper over a FAKE advapi32
 * (`test/fixtures/fake_advapi32.ts`) that decodes what it is handed at the x64 offsets and hands
 * back native blocks laid out the same way. Each fake test's name says what the fake stands in
 * for; the real advapi32 runs under Wine (`deno task test:windows`) and on windows-latest.
 */

import { StoreError } from "../errors.ts";
import { FakeAdvapi32 } from "../../test/fixtures/fake_advapi32.ts";
import { readWideBuffer } from "../../test/fixtures/fake_kernel32.ts";
import {
  CRED_MAX_CREDENTIAL_BLOB_SIZE,
  CRED_PERSIST_LOCAL_MACHINE,
  CRED_TYPE_GENERIC,
  CredentialError,
  credentialError,
  CredentialManager,
  CREDENTIALW,
  CREDENTIALW_SIZE,
  decodeCredential,
  encodeCredential,
  ERROR_KEY_DELETED,
  ERROR_NO_SUCH_LOGON_SESSION,
  ERROR_NOT_FOUND,
  loadAdvapi32,
  PROBE_NAME,
  RPC_X_BAD_STUB_DATA,
} from "./advapi32.ts";
import { fromWide, readWide, toWide } from "./kernel32.ts";

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
function bytesEqual(a: Uint8Array | null, b: Uint8Array, message: string): void {
  assert(a !== null && a.length === b.length && a.every((x, i) => x === b[i]), message);
}
function throws<E extends Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
): E {
  try {
    fn();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

/** The fake stands in for advapi32 itself; the real one runs under Wine (`deno task
 * test:windows`) and on the windows-latest runners. */
const FAKE = "windows advapi32 wrapper (fake advapi32 standing in for Credential Manager)";
/** Neither Windows nor Wine can be made to lose GetLastError's code; only the fake can. */
/** Seen under Wine only, where each credential is a registry key (1018 during a concurrent
 * delete in another process; `test/windows/wine_store_test.ts` meets it for real). */
const KEY_DELETED =
  "windows advapi32 wrapper (fake advapi32 standing in for Wine's registry-backed Credential Manager, ERROR_KEY_DELETED)";
const LOST = "windows advapi32 wrapper (fake advapi32 standing in for a lost GetLastError code)";
const PURE = "windows advapi32 encoding (pure, no OS call)";

Deno.test(`${PURE}: toWide is NUL-terminated UTF-16LE, surrogate pairs kept`, () => {
  const wide = toWide("A鍵🔑");
  // A = 0x0041, 鍵 = 0x9375, 🔑 = U+1F511 = D83D DD11, then the terminator.
  assertEquals(
    Array.from(wide).join(),
    [0x41, 0, 0x75, 0x93, 0x3d, 0xd8, 0x11, 0xdd, 0, 0].join(),
  );
  assertEquals(fromWide(wide.subarray(0, -2)), "A鍵🔑");
  assertEquals(readWide(Deno.UnsafePointer.of(wide)), "A鍵🔑");
  assertEquals(readWide(null), null);
  throws(() => toWide("a\0b"), TypeError);
  throws(() => fromWide(new Uint8Array(3)), RangeError);
  throws(() => readWide(Deno.UnsafePointer.of(new Uint8Array([65, 0, 66, 0])), 1), RangeError);
});

Deno.test(`${PURE}: encodeCredential lays out the 80-byte x64 CREDENTIALW`, () => {
  const blob = new TextEncoder().encode("secret ✓");
  const { struct, keepAlive } = encodeCredential({
    targetName: "agent-runner-auth/agent-runner-access-token",
    blob,
    userName: "agent-runner-access-token",
  });
  assertEquals(struct.length, CREDENTIALW_SIZE);
  assertEquals(CREDENTIALW_SIZE, 80);
  const view = new DataView(struct.buffer);
  assertEquals(view.getUint32(0, true), 0, "Flags@0");
  assertEquals(view.getUint32(4, true), CRED_TYPE_GENERIC, "Type@4");
  assertEquals(view.getBigUint64(16, true), 0n, "Comment@16 NULL");
  assertEquals(view.getBigUint64(24, true), 0n, "LastWritten@24 ignored on write");
  assertEquals(view.getUint32(32, true), blob.length, "CredentialBlobSize@32");
  assertEquals(view.getUint32(36, true), 0, "padding@36");
  assertEquals(view.getUint32(48, true), CRED_PERSIST_LOCAL_MACHINE, "Persist@48 = 2");
  assertEquals(view.getUint32(52, true), 0, "AttributeCount@52");
  assertEquals(view.getBigUint64(56, true), 0n, "Attributes@56");
  assertEquals(view.getBigUint64(64, true), 0n, "TargetAlias@64");
  // The pointers lead to the strings and to a copy of the blob.
  const at = (offset: number) => Deno.UnsafePointer.create(view.getBigUint64(offset, true));
  assertEquals(readWide(at(8)), "agent-runner-auth/agent-runner-access-token", "TargetName@8");
  assertEquals(readWide(at(72)), "agent-runner-access-token", "UserName@72");
  const copied = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(at(40)!, blob.length));
  bytesEqual(copied, blob, "CredentialBlob@40");
  assert(keepAlive.length === 3);
  assert(keepAlive[1] !== blob, "the blob is copied, so the caller's buffer is not wiped");
});

Deno.test(`${PURE}: encodeCredential refuses what Windows would refuse`, () => {
  const target = "agent-runner-auth/x";
  throws(
    () =>
      encodeCredential({
        targetName: target,
        blob: new Uint8Array(CRED_MAX_CREDENTIAL_BLOB_SIZE + 1),
      }),
    RangeError,
  );
  encodeCredential({ targetName: target, blob: new Uint8Array(CRED_MAX_CREDENTIAL_BLOB_SIZE) });
  throws(() => encodeCredential({ targetName: "", blob: new Uint8Array(1) }), RangeError);
  throws(() => encodeCredential({ targetName: "a\0b", blob: new Uint8Array(1) }), TypeError);
  const empty = encodeCredential({ targetName: target, blob: new Uint8Array() });
  assertEquals(new DataView(empty.struct.buffer).getBigUint64(40, true), 0n, "empty blob: NULL");
});

Deno.test(`${PURE}: decodeCredential reads what encodeCredential wrote (round trip)`, () => {
  const blob = new Uint8Array([0, 1, 2, 255]);
  const { struct, keepAlive } = encodeCredential({ targetName: "t/é", blob, userName: "u" });
  const decoded = decodeCredential(Deno.UnsafePointer.of(struct)!);
  assertEquals(decoded.type, CRED_TYPE_GENERIC);
  assertEquals(decoded.targetName, "t/é");
  assertEquals(decoded.userName, "u");
  assertEquals(decoded.comment, null);
  assertEquals(decoded.persist, CRED_PERSIST_LOCAL_MACHINE);
  bytesEqual(decoded.blob, blob, "blob");
  keepAlive.forEach((b) => b.fill(0));
  bytesEqual(decoded.blob, blob, "decoded blob is a copy, not a view of native memory");
  // A size with a NULL blob pointer is refused rather than read.
  const broken = struct.slice();
  new DataView(broken.buffer).setBigUint64(CREDENTIALW.CredentialBlob, 0n, true);
  throws(() => decodeCredential(Deno.UnsafePointer.of(broken)!), RangeError);
});

Deno.test(`${PURE}: Win32 codes map to explained, one-line store errors keeping the number`, () => {
  const target = "agent-runner-auth/agent-runner-access-token";
  const cases: [number, string, string][] = [
    [ERROR_NO_SUCH_LOGON_SESSION, "unavailable", "SSH"],
    [1722, "unavailable", "VaultSvc"],
    [RPC_X_BAD_STUB_DATA, "failed", "2560-byte limit"],
    [0, "failed", "GetLastError returned 0"],
    [5, "failed", "ERROR_ACCESS_DENIED, 5"],
    [4242, "failed", "Win32 error 4242, 4242"],
  ];
  for (const [code, failure, text] of cases) {
    const error = credentialError("CredReadW", code, target);
    assert(error instanceof StoreError && error instanceof CredentialError);
    assertEquals(error.failure, failure, `code ${code}`);
    assertEquals(error.win32Error, code);
    assertEquals(error.call, "CredReadW");
    assert(error.message.includes(text), `${code}: ${error.message}`);
    assert(error.message.includes(String(code)), `${code} keeps its number: ${error.message}`);
    assert(!error.message.includes("\n"), error.message);
  }
});

Deno.test(`${FAKE}: write, read, list and delete a credential; every block freed`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  const blob = new TextEncoder().encode("🔑 value");
  api.write("agent-runner-auth/item", blob, "item");
  const stored = fake.credential("agent-runner-auth/item");
  assert(stored !== undefined);
  assertEquals(stored.userName, "item");
  assertEquals(stored.persist, CRED_PERSIST_LOCAL_MACHINE);
  bytesEqual(stored.blob, blob, "the fake decoded the blob at offset 40");
  assertEquals(new TextDecoder().decode(blob), "🔑 value", "the caller's buffer is not wiped");

  bytesEqual(api.read("agent-runner-auth/item"), blob, "read back");
  bytesEqual(api.read("AGENT-RUNNER-AUTH/ITEM"), blob, "target names are case-insensitive");
  assertEquals(api.read("agent-runner-auth/other"), null);

  api.write("agent-runner-auth/item/a1", new Uint8Array([1]), "item");
  api.write("agent-runner-auth/itemz", new Uint8Array([1]), "itemz");
  assertEquals(api.list("agent-runner-auth/item/").join(), "agent-runner-auth/item/a1");
  assertEquals(api.list("agent-runner-auth/").length, 3);
  assertEquals(api.list("nothing/").length, 0, "ERROR_NOT_FOUND from CredEnumerateW is empty");
  throws(() => api.list("a*"), TypeError);

  assertEquals(api.delete("agent-runner-auth/item"), true);
  assertEquals(api.delete("agent-runner-auth/item"), false);
  assertEquals(api.read("agent-runner-auth/item"), null);
  assertEquals(fake.liveAllocations, 0, "every CredReadW/CredEnumerateW block was CredFree'd");
});

Deno.test(`${FAKE}: CredReadW's CREDENTIALW is read at the x64 offsets (layout self-check)`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  fake.put("svc/item", new Uint8Array([7, 8, 9]), "someone");
  bytesEqual(api.read("svc/item"), new Uint8Array([7, 8, 9]), "blob via offsets 32 and 40");
  // If the returned struct's name did not match the target asked for, the wrapper says the
  // layout is wrong instead of returning someone else's bytes.
  const real = fake.symbols.CredReadW;
  const lying = {
    ...fake.symbols,
    CredReadW: (
      _t: AllowSharedBufferSource | null,
      ty: number,
      fl: number,
      out: AllowSharedBufferSource | null,
    ) => real(toWide("svc/other-item"), ty, fl, out),
  };
  fake.put("svc/other-item", new Uint8Array([1]));
  const error = throws(() => new CredentialManager(lying).read("svc/item"), CredentialError);
  assert(error.message.includes("layout"), error.message);
  assertEquals(fake.liveAllocations, 0, "freed on the error path too");
});

Deno.test(`${FAKE}: a blob over 2,560 bytes is refused before any call`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  throws(
    () => api.write("svc/x", new Uint8Array(CRED_MAX_CREDENTIAL_BLOB_SIZE + 1), "x"),
    RangeError,
  );
  assertEquals(fake.calls.length, 0);
});

Deno.test(`${FAKE}, and for an SSH logon: over SSH (1312) every call is StoreError "unavailable" with an explanation`, () => {
  const fake = new FakeAdvapi32();
  fake.networkLogon = true;
  const api = new CredentialManager(fake.symbols);
  for (
    const call of [
      () => api.read("svc/x"),
      () => api.write("svc/x", new Uint8Array([1]), "x"),
      () => api.delete("svc/x"),
      () => api.list("svc/"),
    ]
  ) {
    const error = throws(call, CredentialError);
    assertEquals(error.failure, "unavailable");
    assertEquals(error.win32Error, ERROR_NO_SUCH_LOGON_SESSION);
    assert(error.message.includes("network logons"), error.message);
  }
});

Deno.test(`${LOST}: a lost error code (GetLastError 0) is never read as "not found"`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  fake.clobberLastError = true;

  // Really missing: CredEnumerateW fails too (with 0), so a probe credential is written under
  // the prefix, the enumeration then succeeds without the target, and the probe is removed.
  assertEquals(api.read("svc/missing"), null);
  assertEquals(api.delete("svc/missing"), false);
  assert(fake.calls.some((c) => c.fn === "CredEnumerateW" && c.target === "svc/missing*"));
  const probes = fake.calls.filter((c) => c.fn === "CredWriteW").map((c) => c.target);
  assertEquals(probes.length, 2);
  assert(probes.every((t) => t.startsWith("svc/missing/agent-runner-probe-")), probes.join());
  assertEquals(fake.targets().length, 0, "the probes were deleted");

  // Something else under the prefix: the enumeration answers by itself, no probe.
  fake.put("svc/missing/a1", new Uint8Array([1]));
  const writes = fake.calls.filter((c) => c.fn === "CredWriteW").length;
  assertEquals(api.read("svc/missing"), null);
  assertEquals(fake.calls.filter((c) => c.fn === "CredWriteW").length, writes);
  fake.remove("svc/missing/a1");

  // Present but the read failed: an error, not null.
  fake.put("svc/present", new Uint8Array([1]));
  fake.failNext("CredReadW", 5);
  let error = throws(() => api.read("svc/present"), CredentialError);
  assertEquals(error.win32Error, 0);
  assert(error.message.includes("GetLastError returned 0"), error.message);
  fake.failNext("CredDeleteW", 5);
  throws(() => api.delete("svc/present"), CredentialError);

  // Nothing can tell (the read, the enumeration and the probe write all fail): a failure.
  fake.remove("svc/present");
  fake.failNext("CredReadW", 5);
  fake.failNext("CredEnumerateW", 5);
  fake.failNext("CredWriteW", 5);
  error = throws(() => api.read("svc/present"), CredentialError);
  assertEquals(error.failure, "failed");
  assertEquals(error.win32Error, 0);
  assertEquals(fake.targets().length, 0);
  assertEquals(fake.liveAllocations, 0);
});

Deno.test(`${LOST}: list() settles a lost code with a probe: [] or the names, probe excluded`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  fake.clobberLastError = true;
  assertEquals(api.list("svc/item/").length, 0, "nothing under the prefix: []");
  const probes = fake.calls.filter((c) => c.fn === "CredWriteW").map((c) => c.target);
  assertEquals(probes.length, 1);
  assert(probes[0].startsWith(`svc/item/${PROBE_NAME}-`), probes[0]);
  fake.put("svc/item/a1", new Uint8Array([1]));
  assertEquals(api.list("svc/item/").join(), "svc/item/a1", "a match needs no probe");
  assertEquals(fake.calls.filter((c) => c.fn === "CredWriteW").length, 1);
  fake.remove("svc/item/a1");
  fake.failNext("CredEnumerateW", 5);
  fake.failNext("CredEnumerateW", 5);
  const error = throws(() => api.list("svc/item/"), CredentialError);
  assertEquals(error.win32Error, 0);
  assertEquals(error.call, "CredEnumerateW");
  fake.put("svc/item/b1", new Uint8Array([1]));
  fake.failNext("CredEnumerateW", 5);
  assertEquals(api.list("svc/item/").join(), "svc/item/b1", "one failure: the probe settles it");
  fake.remove("svc/item/b1");
  fake.clobberLastError = false;
  fake.failNext("CredEnumerateW", 5);
  assertEquals(throws(() => api.list("svc/item/"), CredentialError).win32Error, 5, "a known code");
  assertEquals(fake.targets().length, 0, "every probe was deleted");
  assertEquals(fake.liveAllocations, 0);
});

Deno.test(`${KEY_DELETED}: it reads as missing, deletes as false; an enumeration retries`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  fake.put("svc/x", new Uint8Array([1]));
  fake.failNext("CredReadW", ERROR_KEY_DELETED);
  assertEquals(api.read("svc/x"), null, "a read meeting a concurrent delete");
  fake.failNext("CredDeleteW", ERROR_KEY_DELETED);
  assertEquals(api.delete("svc/x"), false, "a delete meeting a concurrent delete");
  fake.failNext("CredEnumerateW", ERROR_KEY_DELETED);
  assertEquals(api.list("svc/").join(), "svc/x", "the enumeration was retried");
  for (let i = 0; i < 3; i++) fake.failNext("CredEnumerateW", ERROR_KEY_DELETED);
  const error = throws(() => api.list("svc/"), CredentialError);
  assertEquals(error.win32Error, ERROR_KEY_DELETED);
  assert(error.message.includes("ERROR_KEY_DELETED, 1018"), error.message);
  assertEquals(fake.liveAllocations, 0);
});

Deno.test(`${FAKE}: a failed write keeps the Win32 code; nothing is stored`, () => {
  const fake = new FakeAdvapi32();
  const api = new CredentialManager(fake.symbols);
  fake.failNext("CredWriteW", 5);
  const error = throws(() => api.write("svc/x", new Uint8Array([1]), "x"), CredentialError);
  assertEquals(error.win32Error, 5);
  assertEquals(error.call, "CredWriteW");
  assertEquals(fake.targets().length, 0);
  assertEquals(readWideBuffer(toWide("svc/x")), "svc/x");
  assertEquals(ERROR_NOT_FOUND, 1168);
});

Deno.test({
  name: "windows advapi32 wrapper: off Windows the real library is StoreError unavailable",
  ignore: Deno.build.os === "windows",
  fn: () => {
    const error = throws(() => loadAdvapi32(), StoreError);
    assertEquals(error.failure, "unavailable");
    const viaApi = throws(() => new CredentialManager().read("svc/x"), StoreError);
    assertEquals(viaApi.failure, "unavailable");
  },
});
