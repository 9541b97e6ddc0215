/**
 * {@linkcode MacosKeychainStore} against the REAL login keychain. Runs only on macOS
 * (`ignore` elsewhere); everything it writes lives under a test-only service name
 * (`agent-runner-auth-test-<random>`), so a developer's own tokens are never read or touched, and
 * it deletes what it wrote in `finally`.
 *
 * Needs an unlocked login keychain (a desktop session, or a CI runner's default keychain): over
 * SSH without `security unlock-keychain` every call fails with errSecInteractionNotAllowed. Items
 * this test creates with `security add-generic-password -A` allow every application, so neither
 * `security` nor `deno` ever shows a dialog. Permissions: `--allow-ffi --allow-env --allow-run`.
 */

import { Keychain } from "../ffi/darwin/security.ts";
import { MacosKeychainStore } from "../src/store/macos_keychain.ts";
import { ACCESS_ITEM, REFRESH_ITEM } from "../src/store/store.ts";
import { runStoreContract, same } from "./store_contract.ts";

const notMac = Deno.build.os !== "darwin";
const SERVICE = `agent-runner-auth-test-${crypto.randomUUID().slice(0, 8)}`;

/** Runs `/usr/bin/security` with `args`; never with a secret on argv except this test's own. */
async function security(...args: string[]): Promise<{ code: number; stdout: string }> {
  const { code, stdout, stderr } = await new Deno.Command("/usr/bin/security", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout) + text.decode(stderr) };
}

/** The item's creation date line (`"cdat"<timedate>=…`) from `security find-generic-password`. */
async function creationDate(account: string): Promise<string> {
  const { code, stdout } = await security("find-generic-password", "-s", SERVICE, "-a", account);
  same(code, 0, `security find-generic-password (${stdout.trim()})`);
  const line = stdout.split("\n").find((l) => l.includes('"cdat"'));
  if (!line) throw new Error(`no cdat attribute in: ${stdout}`);
  return line.trim();
}

Deno.test({
  name: "MacosKeychainStore against the real login keychain (test-only service)",
  ignore: notMac,
  fn: async (t) => {
    // A prompt-free CI keychain answers in milliseconds; 10 s leaves room for a slow runner.
    const store = new MacosKeychainStore({
      api: new Keychain(undefined, { timeoutMs: 10_000 }),
      service: SERVICE,
    });
    try {
      await t.step("keeps the store contract", (t) => runStoreContract(t, () => store));

      await t.step("reads an item `security` wrote (interop)", async () => {
        const added = await security(
          "add-generic-password",
          "-A",
          "-s",
          SERVICE,
          "-a",
          REFRESH_ITEM,
          "-w",
          "written by security",
        );
        same(added.code, 0, `security add-generic-password (${added.stdout.trim()})`);
        same(await store.get(REFRESH_ITEM), "written by security", "value");
      });

      await t.step("set updates in place: same item, same access list", async () => {
        const before = await creationDate(REFRESH_ITEM);
        await new Promise((resolve) => setTimeout(resolve, 1100)); // cdat has 1 s resolution
        await store.set(REFRESH_ITEM, "updated by the store");
        same(await creationDate(REFRESH_ITEM), before, "creation date (a re-add would change it)");
        // The item still allows every application (its `-A` access list survived the update),
        // so `security` reads it without a dialog.
        const read = await security(
          "find-generic-password",
          "-s",
          SERVICE,
          "-a",
          REFRESH_ITEM,
          "-w",
        );
        same(read.code, 0, `security find-generic-password -w (${read.stdout.trim()})`);
        same(read.stdout.trim(), "updated by the store", "value security reads");
      });
    } finally {
      await store.delete(ACCESS_ITEM).catch(() => {});
      await store.delete(REFRESH_ITEM).catch(() => {});
    }
  },
});
