/**
 * The LockFileEx lock between separate `deno.exe` processes on the real kernel32, run under Wine
 * by `deno task test:windows` (ignored elsewhere): a waiter gets the lock when the holder is
 * killed, and when the holder exits without releasing it.
 */

import { WindowsLockFile } from "../../src/lock/windows.ts";
import { same } from "../store_contract.ts";
import { Child, childArgs } from "./wine_kit.ts";
import { notWindows, WHERE } from "./platform.ts";

function lockTest(name: string, fn: (lockPath: string) => Promise<void>): void {
  Deno.test({
    name: `windows lock (real kernel32, ${WHERE}): ${name}`,
    ignore: notWindows,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "ara-wine-lock-" });
      try {
        await fn(`${dir}\\lock`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

lockTest(
  "two deno.exe contend: the second waits and gets the lock when the first is killed",
  async (lockPath) => {
    const holder = new Child(childArgs("hold", lockPath, "hang"));
    let waiter: Child | undefined;
    try {
      await holder.waitFor(/^held$/);
      waiter = new Child(childArgs("wait", lockPath));
      await waiter.waitFor(/^waiting$/);
      same(waiter.lines.includes("acquired"), false, "the waiter waits while the holder lives");
      same(new WindowsLockFile(lockPath).tryAcquire(), null, "this process is refused too");
      await holder.kill();
      await waiter.waitFor(/^acquired$/);
      same((await waiter.status()).code, 0, `the waiter's exit (stderr: ${waiter.stderr})`);
    } finally {
      await holder.kill();
      await waiter?.kill();
    }
  },
);

lockTest(
  "a holder that exits without releasing frees the lock for a waiting process",
  async (lockPath) => {
    const holder = new Child(childArgs("hold", lockPath, "exit-on-stdin"), { stdin: true });
    try {
      await holder.waitFor(/^held$/);
      const lock = new WindowsLockFile(lockPath);
      same(lock.tryAcquire(), null, "held by the child");
      let waits = 0;
      const waiting = lock.acquire({ timeoutMs: 120_000, onWait: () => waits++ });
      await holder.closeStdin();
      same((await holder.status()).code, 0, `the holder's exit (stderr: ${holder.stderr})`);
      const held = await waiting;
      held.release();
      same(waits, 1, "the acquire waited");
    } finally {
      await holder.kill();
    }
  },
);
