/**
 * {@linkcode WindowsLockFile}: first against a FAKE kernel32 (`test/fixtures/fake_kernel32.ts`),
 * which runs anywhere and checks what the wrapper hands to Windows (UTF-16LE path, flags, the
 * OVERLAPPED, one close per handle) and how it reads the answers; then, gated on
 * `Deno.build.os === "windows"`, the same behaviour against the real kernel32 (under Wine via
 * `deno task test:windows`, and on windows-latest). The fake proves nothing about Windows
 * itself: the test names say which is which and where the real ones ran.
 */

import { LockTimeoutError } from "../errors.ts";
import {
  ERROR_ALREADY_EXISTS,
  ERROR_PATH_NOT_FOUND,
  LOCKFILE_EXCLUSIVE_LOCK,
  LOCKFILE_FAIL_IMMEDIATELY,
  Win32Error,
} from "../../ffi/windows/kernel32.ts";
import { FakeKernel32 } from "../../test/fixtures/fake_kernel32.ts";
import { openLockFile } from "./open.ts";
import { WindowsLockFile } from "./windows.ts";
import { notWindows, WHERE } from "../../test/windows/platform.ts";

function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}
function assertEquals<T>(actual: T, expected: T, message = ""): void {
  if (!Object.is(actual, expected)) {
    throw new Error(`expected ${String(expected)}, got ${String(actual)} ${message}`.trim());
  }
}
async function rejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

/** The fake stands in for kernel32's file locks; the real ones run under Wine (`deno task
 * test:windows`) and on the windows-latest runners. */
const FAKE = "windows lock (fake kernel32 standing in for LockFileEx)";
const PATH = "C:\\Users\\José\\AppData\\Roaming\\agent-runner-auth\\lock";

Deno.test(`${FAKE}: a second handle cannot take the exclusive lock until release`, () => {
  const k32 = new FakeKernel32();
  const lock = new WindowsLockFile(PATH, k32.symbols);
  const held = lock.tryAcquire();
  assert(held !== null);
  assertEquals(lock.tryAcquire(), null);
  assertEquals(new WindowsLockFile(PATH.toUpperCase(), k32.symbols).tryAcquire(), null);
  assertEquals(lock.tryAcquireShared(), null);
  assertEquals(k32.openHandles, 1, "each refused attempt closed its handle");
  held.release();
  const again = lock.tryAcquire();
  assert(again !== null);
  again.release();
  assertEquals(k32.openHandles, 0);
});

Deno.test(`${FAKE}: the path reaches CreateFileW as UTF-16LE and the lock is exclusive+immediate`, () => {
  const k32 = new FakeKernel32();
  const path = "C:\\Temp\\鍵 🔑\\lock";
  new WindowsLockFile(path, k32.symbols).tryAcquire()?.release();
  assertEquals(k32.calls[0].fn, "CreateFileW");
  assertEquals(k32.calls[0].path, path);
  assertEquals(k32.calls[1].fn, "LockFileEx");
  assertEquals(k32.calls[1].flags, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY);
  assertEquals(
    k32.calls.map((c) => c.fn).join(),
    "CreateFileW,LockFileEx,UnlockFileEx,CloseHandle",
  );
});

Deno.test(`${FAKE}: shared locks coexist and exclude an exclusive one`, () => {
  const k32 = new FakeKernel32();
  const lock = new WindowsLockFile(PATH, k32.symbols);
  const a = lock.tryAcquireShared();
  const b = lock.tryAcquireShared();
  assert(a !== null && b !== null);
  assertEquals(k32.calls.find((c) => c.fn === "LockFileEx")?.flags, LOCKFILE_FAIL_IMMEDIATELY);
  assertEquals(lock.tryAcquire(), null);
  a.release();
  assertEquals(lock.tryAcquire(), null, "one shared holder is enough to block");
  b.release();
  lock.tryAcquire()?.release();
  assertEquals(k32.openHandles, 0);
});

Deno.test(`${FAKE}: release is idempotent and closes each handle exactly once`, () => {
  const k32 = new FakeKernel32();
  const lock = new WindowsLockFile(PATH, k32.symbols);
  const first = lock.tryAcquire();
  assert(first !== null);
  first.release();
  first.release();
  {
    using second = lock.tryAcquire() ?? undefined;
    assert(second !== undefined);
    first.release();
    assertEquals(lock.tryAcquire(), null, "second still holds the lock");
  }
  const closes = k32.calls.filter((c) => c.fn === "CloseHandle").length;
  const opens = k32.calls.filter((c) => c.fn === "CreateFileW").length;
  assertEquals(closes, opens);
  assertEquals(k32.openHandles, 0, "Symbol.dispose released the second lock");
});

Deno.test(`${FAKE}: acquire waits for a release and calls onWait exactly once`, async () => {
  const k32 = new FakeKernel32();
  const lock = new WindowsLockFile(PATH, k32.symbols);
  const holder = lock.tryAcquire();
  assert(holder !== null);
  const timer = setTimeout(() => holder.release(), 150);
  try {
    let waits = 0;
    const start = performance.now();
    const held = await lock.acquire({ timeoutMs: 5000, onWait: () => waits++ });
    const elapsed = performance.now() - start;
    held.release();
    assertEquals(waits, 1);
    assert(elapsed >= 100, `acquired after ${elapsed} ms, before the release`);
  } finally {
    clearTimeout(timer);
    holder.release();
  }
  assertEquals(k32.openHandles, 0);
});

Deno.test(`${FAKE}: acquire times out with a one-line LockTimeoutError and closes its handle`, async () => {
  const k32 = new FakeKernel32();
  const holder = new WindowsLockFile(PATH, k32.symbols).tryAcquire();
  assert(holder !== null);
  try {
    const error = await rejects(
      () => new WindowsLockFile(PATH, k32.symbols).acquire({ timeoutMs: 150 }),
      LockTimeoutError,
    );
    assert(error.message.includes(PATH), error.message);
    assert(!error.message.includes("\n"));
    assertEquals(k32.openHandles, 1, "only the holder's handle is left");
  } finally {
    holder.release();
  }
});

Deno.test(`${FAKE}: a missing directory is a Win32Error keeping code 3, nothing leaked`, async () => {
  const k32 = new FakeKernel32();
  k32.missingDirectories.add("C:\\nope");
  const lock = new WindowsLockFile("C:\\nope\\lock", k32.symbols);
  let error: unknown;
  try {
    lock.tryAcquire();
  } catch (e) {
    error = e;
  }
  assert(error instanceof Win32Error, String(error));
  assertEquals(error.code, ERROR_PATH_NOT_FOUND);
  assertEquals(error.call, "CreateFileW");
  assert(error.message.includes("ERROR_PATH_NOT_FOUND (3)"), error.message);
  assert(error.message.includes("C:\\nope\\lock"), error.message);
  await rejects(() => lock.acquire({ timeoutMs: 50 }), Win32Error);
  assertEquals(k32.openHandles, 0);
});

Deno.test(`${FAKE}: CreateFileW's ERROR_ALREADY_EXISTS on success is not taken as a failure`, () => {
  const k32 = new FakeKernel32();
  const lock = new WindowsLockFile(PATH, k32.symbols);
  lock.tryAcquire()?.release();
  const held = lock.tryAcquire(); // the file exists now: CreateFileW succeeds with code 183
  assert(held !== null);
  assertEquals(k32.symbols.GetLastError(), ERROR_ALREADY_EXISTS);
  held.release();
});

Deno.test(`${FAKE}: LockFileEx failures: an unknown code throws, a lost code (0) reads as busy`, () => {
  const k32 = new FakeKernel32();
  const lock = new WindowsLockFile(PATH, k32.symbols);
  k32.failNextLock = 6; // ERROR_INVALID_HANDLE
  let error: unknown;
  try {
    lock.tryAcquire();
  } catch (e) {
    error = e;
  }
  assert(error instanceof Win32Error && error.code === 6, String(error));
  assertEquals(k32.openHandles, 0, "the handle is closed after a failure");

  k32.failNextLock = 6;
  k32.clobberLastError = true;
  assertEquals(lock.tryAcquire(), null, "GetLastError 0 is never taken as success");
  k32.clobberLastError = false;
  assertEquals(k32.openHandles, 0);
  lock.tryAcquire()?.release();
});

// ---------------------------------------------------------------------------------------------
// Real kernel32: only on Windows
// ---------------------------------------------------------------------------------------------

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ara-lock-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: `windows lock (real kernel32, ${WHERE}): exclusive, shared, release and timeout`,
  ignore: notWindows,
  fn: () =>
    withDir(async (dir) => {
      const path = `${dir}\\lock`;
      const lock = new WindowsLockFile(path);
      const held = lock.tryAcquire();
      assert(held !== null);
      assertEquals(lock.tryAcquire(), null, "a second handle in this process is refused");
      assertEquals(lock.tryAcquireShared(), null);
      await rejects(() => lock.acquire({ timeoutMs: 200 }), LockTimeoutError);
      held.release();
      held.release();
      const a = lock.tryAcquireShared();
      const b = lock.tryAcquireShared();
      assert(a !== null && b !== null, "shared locks coexist");
      assertEquals(lock.tryAcquire(), null);
      a.release();
      b.release();
      (await lock.acquire({ timeoutMs: 200 })).release();
      assertEquals(Deno.statSync(path).size, 0, "the lock file is never written");
    }),
});

Deno.test({
  name: `windows lock (real kernel32, ${WHERE}): acquire waits for a release`,
  ignore: notWindows,
  fn: () =>
    withDir(async (dir) => {
      const lock = new WindowsLockFile(`${dir}\\lock`);
      const holder = lock.tryAcquire();
      assert(holder !== null);
      const timer = setTimeout(() => holder.release(), 300);
      try {
        let waits = 0;
        const held = await lock.acquire({ timeoutMs: 5000, onWait: () => waits++ });
        held.release();
        assertEquals(waits, 1);
      } finally {
        clearTimeout(timer);
        holder.release();
      }
    }),
});

Deno.test({
  name: `windows lock (real kernel32, ${WHERE}): a missing directory is ERROR_PATH_NOT_FOUND`,
  ignore: notWindows,
  fn: () =>
    withDir((dir) => {
      let error: unknown;
      try {
        new WindowsLockFile(`${dir}\\missing\\lock`).tryAcquire();
      } catch (e) {
        error = e;
      }
      assert(error instanceof Win32Error && error.code === ERROR_PATH_NOT_FOUND, String(error));
    }),
});

Deno.test({
  name: `openLockFile picks the Windows implementation (${WHERE})`,
  ignore: notWindows,
  fn: () =>
    withDir(async (dir) => {
      const lock = await openLockFile(`${dir}\\lock`);
      assert(lock instanceof WindowsLockFile);
      lock.tryAcquire()?.release();
    }),
});

Deno.test({
  name:
    `windows lock (real kernel32, ${WHERE}): another process's lock excludes this one until it exits`,
  ignore: notWindows,
  fn: () =>
    withDir(async (dir) => {
      const path = `${dir}\\lock`;
      const module = JSON.stringify(new URL("./windows.ts", import.meta.url).href);
      const code = [
        `const { WindowsLockFile } = await import(${module});`,
        `const held = new WindowsLockFile(${JSON.stringify(path)}).tryAcquire();`,
        `console.log(held ? "held" : "busy");`,
        `await new Promise((r) => setTimeout(r, 800));`,
        `held?.release();`,
      ].join("\n");
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", "--no-prompt", "-"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(code));
      await writer.close();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      try {
        const first = await reader.read();
        assertEquals(first.value?.trim(), "held");
        const lock = new WindowsLockFile(path);
        assertEquals(lock.tryAcquire(), null, "the child holds it");
        const held = await lock.acquire({ timeoutMs: 10_000 });
        held.release();
      } finally {
        reader.releaseLock();
        await child.stdout.cancel().catch(() => {});
        await child.stderr.cancel();
        await child.status;
      }
    }),
});
