/**
 * {@linkcode WindowsCredentialStore} against the REAL Windows Credential Manager. Runs only on
 * Windows (`ignore` elsewhere); every credential it writes is under a test-only prefix
 * (`agent-runner-auth-test-<random>/…`), so a developer's own tokens are never read or touched,
 * and `finally` deletes everything under that prefix.
 *
 * Needs an interactive (console, RDP or CI service) logon: over SSH Credential Manager answers
 * ERROR_NO_SUCH_LOGON_SESSION. Permissions: `--allow-ffi --allow-env --allow-run` (cmdkey).
 */

import {
  advapi32Symbols,
  CRED_PERSIST_LOCAL_MACHINE,
  CRED_TYPE_GENERIC,
  CredentialManager,
  decodeCredential,
  ERROR_NOT_FOUND,
  loadAdvapi32,
} from "../ffi/windows/advapi32.ts";
import { toWide } from "../ffi/windows/kernel32.ts";
import { WindowsCredentialStore } from "../src/store/windows_credential_manager.ts";
import { ACCESS_ITEM, REFRESH_ITEM } from "../src/store/store.ts";
import { runStoreContract, same } from "./store_contract.ts";
import { notWindows, underWine, WHERE } from "./windows/platform.ts";

const SERVICE = `agent-runner-auth-test-${crypto.randomUUID().slice(0, 8)}`;

Deno.test({
  name: `WindowsCredentialStore against the real Credential Manager (${WHERE}, test-only prefix)`,
  ignore: notWindows,
  fn: async (t) => {
    const api = new CredentialManager();
    const store = new WindowsCredentialStore({ api, service: SERVICE });
    try {
      await t.step("keeps the store contract", (t) => runStoreContract(t, () => store));

      await t.step("a 16 KB value is 7 chunks of at most 2,560 bytes plus a header", async () => {
        const value = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef".repeat(512); // 16,384 bytes
        await store.set(ACCESS_ITEM, value);
        same(api.list(`${SERVICE}/`).length, 8, "credentials under the prefix");
        same(await store.get(ACCESS_ITEM), value, "joined back");
        await store.set(ACCESS_ITEM, "short");
        same(api.list(`${SERVICE}/`).join(), `${SERVICE}/${ACCESS_ITEM}`, "stale chunks removed");
        same(await store.delete(ACCESS_ITEM), true, "delete");
        same(api.list(`${SERVICE}/`).length, 0, "nothing left");
      });

      await t.step("the CREDENTIALW Windows returns has the fields written (x64 layout)", () => {
        const target = `${SERVICE}/${REFRESH_ITEM}`;
        api.write(target, new Uint8Array([1, 2, 3, 250]), REFRESH_ITEM);
        const native = loadAdvapi32();
        const out = new BigUint64Array(1);
        same(native.CredReadW(toWide(target), CRED_TYPE_GENERIC, 0, out), 1, "CredReadW");
        const pointer = Deno.UnsafePointer.create(out[0])!;
        try {
          const credential = decodeCredential(pointer);
          same(credential.type, CRED_TYPE_GENERIC, "Type@4");
          same(credential.targetName, target, "TargetName@8");
          same(Array.from(credential.blob).join(), "1,2,3,250", "CredentialBlobSize@32, Blob@40");
          same(credential.persist, CRED_PERSIST_LOCAL_MACHINE, "Persist@48");
          same(credential.userName, REFRESH_ITEM, "UserName@72");
        } finally {
          native.CredFree(pointer);
        }
        api.delete(target);
      });

      await t.step("(diagnostic) GetLastError survives Deno's FFI return path", () => {
        // If this fails, Deno clobbers the last error: the store still works (it then decides
        // "not found" from CredEnumerateW and a probe credential), but every miss costs more.
        const native = loadAdvapi32();
        const out = new BigUint64Array(1);
        const ok = native.CredReadW(toWide(`${SERVICE}/missing`), CRED_TYPE_GENERIC, 0, out);
        const code = native.GetLastError();
        same(ok, 0, "CredReadW of a missing target fails");
        same(code, ERROR_NOT_FOUND, "GetLastError right after it");
        same(advapi32Symbols.CredReadW.parameters.length, 4, "symbol table");
      });

      await t.step({
        name: "cmdkey lists what the store wrote (interop; Wine has no cmdkey.exe)",
        ignore: underWine,
        fn: async () => {
          await store.set(ACCESS_ITEM, "listed");
          const { stdout } = await new Deno.Command("cmdkey", {
            args: [`/list:${SERVICE}/*`],
            stdout: "piped",
            stderr: "piped",
          }).output();
          const listing = new TextDecoder().decode(stdout);
          same(listing.includes(`${SERVICE}/${ACCESS_ITEM}`), true, `cmdkey output: ${listing}`);
        },
      });
    } finally {
      try {
        for (const target of api.list(`${SERVICE}/`)) api.delete(target);
      } catch (error) {
        console.error(`Could not remove the test credentials under ${SERVICE}/: ${error}`);
      }
    }
  },
});
