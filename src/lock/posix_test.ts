/**
 * In-process tests of {@linkcode PosixLockFile} against the real kernel flock: no mocks. Two
 * acquisitions in one process use two open file descriptions, so they conflict like two
 * processes would. Cross-process behaviour is in `test/lock_race_test.ts`.
 */

import { LockTimeoutError } from "../errors.ts";
import { openLockFd, PosixError, tryFlock, unlockAndClose } from "../../ffi/posix/libc.ts";
import { PosixLockFile } from "./posix.ts";
import { openLockFile } from "./open.ts";

// Tiny local assertions: src/ takes no npm/jsr/node imports, not even in tests.
function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}
function assertEquals<T>(actual: T, expected: T, message = ""): void {
  if (!Object.is(actual, expected)) {
    throw new Error(`expected ${String(expected)}, got ${String(actual)} ${message}`.trim());
  }
}
// deno-lint-ignore no-explicit-any
type Class<E> = new (...args: any[]) => E;
function assertThrows<E extends Error>(fn: () => unknown, type: Class<E>, includes = ""): E {
  try {
    fn();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    assert(error.message.includes(includes), `"${error.message}" lacks "${includes}"`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}
async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: Class<E>,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

const posix = Deno.build.os === "linux" || Deno.build.os === "darwin";

/** Runs `fn` with a fresh private directory and removes it afterwards. */
async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "ara-lock-" });
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name: "exclusive lock: a second fd in the same process cannot take it until release",
  ignore: !posix,
  fn: () =>
    withDir((dir) => {
      const lock = new PosixLockFile(`${dir}/lock`);
      const held = lock.tryAcquire();
      assert(held !== null);
      try {
        assertEquals(lock.tryAcquire(), null);
        assertEquals(new PosixLockFile(`${dir}/lock`).tryAcquire(), null);
        assertEquals(lock.tryAcquireShared(), null);
      } finally {
        held.release();
      }
      const again = lock.tryAcquire();
      assert(again !== null);
      again.release();
    }),
});

Deno.test({
  name: "shared locks coexist and exclude an exclusive one",
  ignore: !posix,
  fn: () =>
    withDir((dir) => {
      const lock = new PosixLockFile(`${dir}/lock`);
      const a = lock.tryAcquireShared();
      const b = lock.tryAcquireShared();
      try {
        assert(a !== null && b !== null);
        assertEquals(lock.tryAcquire(), null);
        a.release();
        assertEquals(lock.tryAcquire(), null, "one shared holder is enough to block");
      } finally {
        a?.release();
        b?.release();
      }
      const exclusive = lock.tryAcquire();
      assert(exclusive !== null);
      exclusive.release();
    }),
});

Deno.test({
  name: "release is idempotent and a late second release never closes a reused fd",
  ignore: !posix,
  fn: () =>
    withDir((dir) => {
      const lock = new PosixLockFile(`${dir}/lock`);
      const first = lock.tryAcquire();
      assert(first !== null);
      first.release();
      // The kernel hands out the lowest free fd, so `second` very likely reuses first's number.
      const second = lock.tryAcquire();
      assert(second !== null);
      try {
        first.release();
        first.release();
        assertEquals(lock.tryAcquire(), null, "second must still hold the lock");
      } finally {
        second.release();
      }
      second.release();
      using third = lock.tryAcquire() ?? undefined;
      assert(third !== undefined, "Symbol.dispose releases too");
    }),
});

Deno.test({
  name: "acquire returns at once when free and never calls onWait",
  ignore: !posix,
  fn: () =>
    withDir(async (dir) => {
      let waits = 0;
      const held = await new PosixLockFile(`${dir}/lock`).acquire({
        timeoutMs: 1000,
        onWait: () => waits++,
      });
      held.release();
      assertEquals(waits, 0);
    }),
});

Deno.test({
  name: "acquire waits for a release and calls onWait exactly once",
  ignore: !posix,
  fn: () =>
    withDir(async (dir) => {
      const lock = new PosixLockFile(`${dir}/lock`);
      const holder = lock.tryAcquire();
      assert(holder !== null);
      const timer = setTimeout(() => holder.release(), 300);
      try {
        let waits = 0;
        const start = performance.now();
        const held = await lock.acquire({ timeoutMs: 5000, onWait: () => waits++ });
        const elapsed = performance.now() - start;
        held.release();
        assertEquals(waits, 1);
        assert(elapsed >= 250, `acquired after ${elapsed} ms, before the release`);
        // No upper bound: on a loaded machine the poll comes late (issue 11 #8).
      } finally {
        clearTimeout(timer);
        holder.release();
      }
    }),
});

Deno.test({
  name: "acquire times out with a one-line LockTimeoutError naming the lock file",
  ignore: !posix,
  fn: () =>
    withDir(async (dir) => {
      const path = `${dir}/lock`;
      const holder = new PosixLockFile(path).tryAcquire();
      assert(holder !== null);
      try {
        let waits = 0;
        const start = performance.now();
        const error = await assertRejects(
          () => new PosixLockFile(path).acquire({ timeoutMs: 300, onWait: () => waits++ }),
          LockTimeoutError,
        );
        const elapsed = performance.now() - start;
        assertEquals(error.code, "lock_timeout");
        assert(error.message.includes(path), error.message);
        assert(error.message.includes("another agent-runner-auth process holds it"));
        assert(!error.message.includes("\n"));
        assertEquals(waits, 1);
        assert(elapsed >= 300, `timed out after ${elapsed} ms, before the deadline`);
        // The waiting fd was closed: once the holder goes, the lock is free.
        holder.release();
        const free = new PosixLockFile(path).tryAcquire();
        assert(free !== null);
        free.release();
      } finally {
        holder.release();
      }
    }),
});

Deno.test({
  name: "the lock file is created 0600, and an existing one is never truncated or replaced",
  ignore: !posix,
  fn: () =>
    withDir(async (dir) => {
      const fresh = `${dir}/fresh`;
      (await new PosixLockFile(fresh).acquire({ timeoutMs: 100 })).release();
      assertEquals(Deno.statSync(fresh).mode! & 0o777, 0o600);
      assertEquals(Deno.statSync(fresh).size, 0);

      const existing = `${dir}/existing`;
      Deno.writeTextFileSync(existing, "keep me\n", { mode: 0o644 });
      Deno.chmodSync(existing, 0o644);
      const inode = Deno.statSync(existing).ino;
      const lock = new PosixLockFile(existing);
      lock.tryAcquire()?.release();
      lock.tryAcquireShared()?.release();
      (await lock.acquire({ timeoutMs: 100 })).release();
      assertEquals(Deno.readTextFileSync(existing), "keep me\n");
      assertEquals(Deno.statSync(existing).ino, inode);
      assertEquals(Deno.statSync(existing).mode! & 0o777, 0o600, "a too-open mode is tightened");
    }),
});

Deno.test({
  name: "the lock directory is not created: a missing one is NotFound",
  ignore: !posix,
  fn: () =>
    withDir(async (dir) => {
      const lock = new PosixLockFile(`${dir}/missing/lock`);
      assertThrows(() => lock.tryAcquire(), Deno.errors.NotFound);
      await assertRejects(() => lock.acquire({ timeoutMs: 100 }), Deno.errors.NotFound);
      assertThrows(() => Deno.statSync(`${dir}/missing`), Deno.errors.NotFound);
    }),
});

Deno.test({
  name: "libc wrapper: O_CLOEXEC is set and a bad fd is a PosixError naming EBADF",
  ignore: !posix,
  fn: () =>
    withDir((dir) => {
      const fd = openLockFd(`${dir}/lock`);
      try {
        if (Deno.build.os === "linux") {
          // /proc/self/fdinfo shows the open flags in octal; O_CLOEXEC is 0o2000000, O_RDWR 2.
          const info = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
          const flags = parseInt(/^flags:\s*([0-7]+)/m.exec(info)![1], 8);
          assertEquals(flags & 0o2000000, 0o2000000, info);
          assertEquals(flags & 0o3, 0o2, info);
        }
        assertEquals(tryFlock(fd, true), true);
      } finally {
        unlockAndClose(fd);
      }
      const error = assertThrows(() => tryFlock(fd, true), PosixError);
      assertEquals(error.code, "EBADF");
      assertEquals(error.errno, 9);
      assert(error.message.includes("EBADF"), error.message);
      assertThrows(() => unlockAndClose(fd), PosixError, "EBADF");
    }),
});

Deno.test({
  name: "openLockFile picks the posix implementation here",
  ignore: !posix,
  fn: () =>
    withDir(async (dir) => {
      const lock = await openLockFile(`${dir}/lock`);
      assert(lock instanceof PosixLockFile);
      const held = lock.tryAcquire();
      assert(held !== null);
      held.release();
    }),
});

Deno.test({
  name: "importing the lock modules opens no library and needs no --allow-ffi",
  ignore: !posix,
  fn: async () => {
    // No permission at all: a dlopen at import time would fail with NotCapable. The first
    // acquire must fail that way, which proves the child really ran without --allow-ffi.
    const here = new URL(".", import.meta.url);
    const code = [
      `await import(${JSON.stringify(new URL("open.ts", here).href)});`,
      `const m = await import(${JSON.stringify(new URL("posix.ts", here).href)});`,
      `const lock = new m.PosixLockFile("/nonexistent/lock");`,
      `try { lock.tryAcquire(); } catch (e) { console.log(e.name); }`,
    ].join("\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(code));
    await writer.close();
    const { code: status, stdout, stderr } = await child.output();
    assertEquals(status, 0, new TextDecoder().decode(stderr));
    assertEquals(new TextDecoder().decode(stdout).trim(), "NotCapable");
  },
});
