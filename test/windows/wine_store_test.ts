/**
 * The Credential Manager store against the real advapi32 of Windows, run under Wine by
 * `deno task test:windows` (ignored elsewhere): the store contract, a 6 KB value split into
 * chunks, a writer killed between its steps, and a reader in this process while another
 * `deno.exe` rewrites a chunked value. Every credential is under a test-only service prefix in
 * the run's fresh WINEPREFIX.
 */

import { CredentialManager } from "../../ffi/windows/advapi32.ts";
import { StoreError } from "../../src/errors.ts";
import { ACCESS_ITEM, REFRESH_ITEM } from "../../src/store/store.ts";
import { chunkTarget, WindowsCredentialStore } from "../../src/store/windows_credential_manager.ts";
import { runStoreContract, same } from "../store_contract.ts";
import { value } from "./child.ts";
import { Child, childArgs } from "./wine_kit.ts";
import { notWindows, WHERE } from "./platform.ts";

const SERVICE = `agent-runner-auth-wine-${crypto.randomUUID().slice(0, 8)}`;
const BASE = `${SERVICE}/${ACCESS_ITEM}`;
/** Reads of a value another process keeps rewriting. */
const READS = 60;
/** 6 KB: three chunks of at most 2,560 bytes. */
const SIX_KB = 6 * 1024;

function names(api: CredentialManager): string {
  return api.list(`${SERVICE}/`).map((n) => n.slice(SERVICE.length + 1)).sort().join(",");
}

function wineTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({
    name: `windows credential store (real advapi32, ${WHERE}): ${name}`,
    ignore: notWindows,
    fn: async (t) => {
      try {
        await fn(t);
      } finally {
        const api = new CredentialManager();
        for (const target of api.list(`${SERVICE}/`)) api.delete(target);
      }
    },
  });
}

wineTest("keeps the store contract (windows-credential-manager)", async (t) => {
  await runStoreContract(t, () => new WindowsCredentialStore({ service: SERVICE }));
});

wineTest("a 6 KB value is split into 3 chunk credentials and read back whole", async () => {
  const api = new CredentialManager();
  const store = new WindowsCredentialStore({ service: SERVICE });
  const six = value("S", SIX_KB);
  await store.set(ACCESS_ITEM, six);
  same(names(api), `${ACCESS_ITEM},${ACCESS_ITEM}/a1,${ACCESS_ITEM}/a2,${ACCESS_ITEM}/a3`, "items");
  same(api.read(chunkTarget(BASE, "a", 3))?.length, SIX_KB - 2 * 2560, "the last chunk's size");
  same(await new WindowsCredentialStore({ service: SERVICE }).get(ACCESS_ITEM), six, "read back");
  const next = value("T", SIX_KB);
  await store.set(ACCESS_ITEM, next);
  same(
    names(api),
    `${ACCESS_ITEM},${ACCESS_ITEM}/b1,${ACCESS_ITEM}/b2,${ACCESS_ITEM}/b3`,
    "slot b",
  );
  same(await store.get(ACCESS_ITEM), next, "the second value");
  await store.set(ACCESS_ITEM, "short");
  same(names(api), ACCESS_ITEM, "a short value leaves no chunk behind");
  same(await store.delete(REFRESH_ITEM), false, "deleting an absent item");
});

wineTest(
  "a writer killed between its steps leaves the old or the new value, never a cut one",
  async (t) => {
    const api = new CredentialManager();
    const store = new WindowsCredentialStore({ service: SERVICE });
    const old = value("O", SIX_KB);
    const next = value("N", SIX_KB);
    // The writer's mutating calls for a 3-chunk value: 1-3 the new chunks, 4 the header,
    // 5-7 deleting the old chunks. Killed after 2, 4 and 5 (three deno.exe starts).
    for (const [pauseAfter, expected] of [[2, old], [4, next], [5, next]] as const) {
      await t.step(`killed after call ${pauseAfter}`, async () => {
        await store.set(ACCESS_ITEM, old);
        const writer = new Child(
          childArgs("write", SERVICE, ACCESS_ITEM, "N", `${SIX_KB}`, `${pauseAfter}`),
        );
        try {
          await writer.waitFor(new RegExp(`^paused after ${pauseAfter}: `));
        } finally {
          await writer.kill();
        }
        const seen = await store.get(ACCESS_ITEM);
        same(seen, expected, `the value after a kill at call ${pauseAfter}`);
        // The next write cleans whatever the killed one left behind.
        await store.set(ACCESS_ITEM, "after");
        same(names(api), ACCESS_ITEM, "leftovers removed by the next write");
      });
    }
  },
);

wineTest("a reader during another process's chunked writes sees whole values only", async () => {
  const store = new WindowsCredentialStore({ service: SERVICE });
  const a = value("A", SIX_KB);
  const b = value("B", SIX_KB);
  await store.set(ACCESS_ITEM, a);
  // The writer rewrites the value without pause from before the first read until after the last.
  const writer = new Child(childArgs("write-loop", SERVICE, ACCESS_ITEM, `${SIX_KB}`), {
    stdin: true,
  });
  let whole = 0;
  let retriesExhausted = 0;
  let rounds = 0;
  try {
    await writer.waitFor(/^writing$/);
    for (let read = 0; read < READS; read++) {
      try {
        const seen = await store.get(ACCESS_ITEM);
        if (seen !== a && seen !== b) {
          throw new Error(`read ${read} returned neither value: ${seen?.length} characters`);
        }
        whole++;
      } catch (error) {
        // Allowed by the store's design (never a cut value): the writer changed the chunks
        // under every one of this read's attempts.
        if (!(error instanceof StoreError && error.failure === "corrupt")) throw error;
        retriesExhausted++;
      }
    }
    await writer.closeStdin();
    rounds = Number((await writer.waitFor(/^done \d+$/)).split(" ")[1]);
    same((await writer.status()).code, 0, `the writer's exit (stderr: ${writer.stderr})`);
  } finally {
    await writer.kill();
  }
  same(rounds >= 2, true, `writes during the reads (${rounds})`);
  same(whole > 0, true, `whole reads (${whole}; ${retriesExhausted} ran out of retries)`);
  same([a, b].includes((await store.get(ACCESS_ITEM))!), true, "a whole value at the end");
});
