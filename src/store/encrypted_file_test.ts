import { hkdf } from "@panva/hkdf";
import { assertStoreError, runStoreContract, same } from "../../test/store_contract.ts";
import {
  deriveKey,
  EncryptedFileStore,
  type EncryptedFileStoreOptions,
  HKDF_INFO,
  readMachineId,
} from "./encrypted_file.ts";
import { ACCESS_ITEM, REFRESH_ITEM } from "./store.ts";

const unix = Deno.build.os !== "windows";

/** A store in a fresh temp dir (a config dir that does not exist yet), silent by default. */
async function withStore(
  fn: (store: EncryptedFileStore, dir: string) => Promise<void>,
  options: Partial<EncryptedFileStoreOptions> = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "ara-encfile-" });
  const dir = `${root}/config`;
  try {
    await fn(new EncryptedFileStore({ dir, onWarning: () => {}, ...options }), dir);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test("EncryptedFileStore keeps the store contract", async (t) => {
  await withStore((store) => runStoreContract(t, () => store));
});

Deno.test({
  name: "files are 0600 in 0700 folders, one per item, with a header and a fresh IV per write",
  ignore: !unix,
  fn: () =>
    withStore(async (store, dir) => {
      await store.set(ACCESS_ITEM, "same value");
      const first = await Deno.readFile(store.itemPath(ACCESS_ITEM));
      await store.set(ACCESS_ITEM, "same value");
      const second = await Deno.readFile(store.itemPath(ACCESS_ITEM));
      same(mode(dir), 0o700, "config dir");
      same(mode(store.itemsDir), 0o700, "tokens dir");
      same(mode(store.keyPath), 0o600, "store.key");
      same(mode(store.itemPath(ACCESS_ITEM)), 0o600, "item file");
      same(store.itemPath(ACCESS_ITEM), `${dir}/tokens/${ACCESS_ITEM}.enc`, "item path");
      same(new TextDecoder().decode(first.subarray(0, 4)), "ARAT", "magic");
      same(first[4], 1, "format version");
      same(first.length, 5 + 12 + "same value".length + 16, "header + IV + ciphertext + tag");
      same(
        first.subarray(5, 17).join() === second.subarray(5, 17).join(),
        false,
        "a fresh IV on every write",
      );
      same(new TextDecoder().decode(first).includes("same value"), false, "no plaintext");
      same((await Deno.readFile(store.keyPath)).length, 37, "key file: ARAK + version + 32");
      const leftovers = [...Deno.readDirSync(store.itemsDir)].filter((e) =>
        e.name.endsWith(".tmp")
      );
      same(leftovers.length, 0, "no temp files left behind");
    }),
});

Deno.test({
  name: "files or folders open to others are refused with the chmod that fixes them",
  ignore: !unix,
  fn: () =>
    withStore(async (store, dir) => {
      await store.set(ACCESS_ITEM, "v");
      const item = store.itemPath(ACCESS_ITEM);
      for (
        const [path, loose, fix] of [
          [item, 0o644, 600],
          [store.keyPath, 0o640, 600],
          [store.itemsDir, 0o755, 700],
        ] as const
      ) {
        await Deno.chmod(path, loose);
        // A fresh instance each time: the key is read once per instance (once per process).
        const fresh = new EncryptedFileStore({ dir, onWarning: () => {} });
        const error = await assertStoreError(fresh.get(ACCESS_ITEM), "failed");
        same(error.message.includes(`chmod ${fix} ${path}`), true, error.message);
        same(error.message.includes(`mode 0${loose.toString(8)}`), true, error.message);
        await Deno.chmod(path, fix === 600 ? 0o600 : 0o700);
      }
      await Deno.chmod(store.keyPath, 0o604);
      const fresh = new EncryptedFileStore({ dir, onWarning: () => {} });
      await assertStoreError(fresh.set(REFRESH_ITEM, "x"), "failed");
      await assertStoreError(fresh.assertUsable(), "failed");
    }),
});

Deno.test("damaged, truncated, foreign and future-version files are corrupt, never null", () =>
  withStore(async (store) => {
    await store.set(ACCESS_ITEM, "a token value");
    const path = store.itemPath(ACCESS_ITEM);
    const good = await Deno.readFile(path);
    const cases: [string, Uint8Array, RegExp][] = [
      ["a flipped ciphertext bit", flip(good, good.length - 20), /cannot be decrypted/],
      ["a flipped tag bit", flip(good, good.length - 1), /cannot be decrypted/],
      ["a flipped IV bit", flip(good, 6), /cannot be decrypted/],
      ["a truncated file", good.subarray(0, 20), /truncated/],
      ["an empty file", new Uint8Array(0), /not an agent-runner-auth encrypted token file/],
      [
        "JSON (a plaintext token)",
        new TextEncoder().encode('{"access_token":"x"}'),
        /not an agent-runner-auth encrypted token file/,
      ],
      ["format version 2", withByte(good, 4, 2), /format version 2/],
    ];
    for (const [what, bytes, pattern] of cases) {
      await Deno.writeFile(path, bytes, { mode: 0o600 });
      const error = await assertStoreError(store.get(ACCESS_ITEM), "corrupt");
      same(pattern.test(error.message), true, `${what}: ${error.message}`);
      same(error.message.includes(path), true, `${what}: names the file`);
      same(error.message.includes("a token value"), false, "no secret in the message");
    }
  }));

Deno.test("a file moved to another item's name does not decrypt (the item name is AAD)", () =>
  withStore(async (store) => {
    await store.set(ACCESS_ITEM, "access value");
    await Deno.rename(store.itemPath(ACCESS_ITEM), store.itemPath(REFRESH_ITEM));
    await assertStoreError(store.get(REFRESH_ITEM), "corrupt");
  }));

Deno.test("a missing or replaced key makes existing items corrupt, naming the key file", () =>
  withStore(async (store, dir) => {
    await store.set(ACCESS_ITEM, "v");
    await Deno.remove(store.keyPath);
    const fresh = () => new EncryptedFileStore({ dir, onWarning: () => {} });
    const missing = await assertStoreError(fresh().get(ACCESS_ITEM), "corrupt");
    same(missing.message.includes(`key file ${store.keyPath} is missing`), true, missing.message);
    same(await fresh().get(REFRESH_ITEM), null, "an absent item is still just absent");

    // A set makes a new key; the old item no longer decrypts with it.
    await fresh().set(REFRESH_ITEM, "r");
    const replaced = await assertStoreError(fresh().get(ACCESS_ITEM), "corrupt");
    same(replaced.message.includes(store.keyPath), true, replaced.message);
    same(await fresh().get(REFRESH_ITEM), "r", "the new item reads back");

    await Deno.writeFile(store.keyPath, new Uint8Array(37), { mode: 0o600 });
    const foreign = await assertStoreError(fresh().get(REFRESH_ITEM), "corrupt");
    same(foreign.message.includes("is not an agent-runner-auth store key"), true, foreign.message);
  }));

Deno.test("another machine id (the HKDF salt) cannot decrypt: corrupt, not null", () =>
  withStore(async (_store, dir) => {
    const here = new EncryptedFileStore({ dir, machineId: "machine-a", onWarning: () => {} });
    await here.set(ACCESS_ITEM, "v");
    same(await here.get(ACCESS_ITEM), "v", "same machine");
    const there = new EncryptedFileStore({ dir, machineId: "machine-b", onWarning: () => {} });
    const error = await assertStoreError(there.get(ACCESS_ITEM), "corrupt");
    same(/machine id changed/.test(error.message), true, error.message);
  }));

Deno.test("the warning says it is weaker than a keychain, once per store", () =>
  withStore(async (_store, dir) => {
    const lines: string[] = [];
    const store = new EncryptedFileStore({ dir, onWarning: (line) => lines.push(line) });
    await store.get(ACCESS_ITEM);
    await store.set(ACCESS_ITEM, "v");
    await store.delete(ACCESS_ITEM);
    same(lines.length, 1, "warned once");
    same(lines[0], store.warning, "the warning field is what was said");
    same(/weaker than an OS keychain/.test(lines[0]), true, lines[0]);
    same(lines[0].includes(dir), true, "names the directory");
    same(lines[0].includes("\n"), false, "one line");
  }));

Deno.test("two first writers in parallel agree on one key", () =>
  withStore(async (_store, dir) => {
    const a = new EncryptedFileStore({ dir, onWarning: () => {} });
    const b = new EncryptedFileStore({ dir, onWarning: () => {} });
    await Promise.all([a.set(ACCESS_ITEM, "from a"), b.set(REFRESH_ITEM, "from b")]);
    const c = new EncryptedFileStore({ dir, onWarning: () => {} });
    same(await c.get(ACCESS_ITEM), "from a", "a's item");
    same(await c.get(REFRESH_ITEM), "from b", "b's item");
  }));

Deno.test("the key is HKDF-SHA-256(secret, salt = machine id, info), as WebCrypto computes it", async () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const salt = "3d1219c7c4c5404aaa1f6d2a48adfda4";
  const ours = await hkdf("sha256", secret, new TextEncoder().encode(salt), HKDF_INFO, 32);
  const base = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
  const webcrypto = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: new TextEncoder().encode(salt),
        info: new TextEncoder().encode(HKDF_INFO),
      },
      base,
      256,
    ),
  );
  same(ours.join(), webcrypto.join(), "@panva/hkdf and WebCrypto HKDF agree");
  // And deriveKey uses exactly that key: what one encrypts, the other decrypts.
  const key = await deriveKey(secret, salt);
  const raw = await crypto.subtle.importKey("raw", webcrypto, "AES-GCM", false, ["decrypt"]);
  const iv = new Uint8Array(12);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new Uint8Array([1, 2]));
  const opened = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv }, raw, sealed));
  same(opened.join(), "1,2", "round trip across the two keys");
});

Deno.test({
  name: "readMachineId reads /etc/machine-id, trimmed, where it exists",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const text = await Deno.readTextFile("/etc/machine-id").catch(() => null);
    if (text === null) return;
    same(await readMachineId(), text.trim(), "machine id");
  },
});

function flip(bytes: Uint8Array, index: number): Uint8Array {
  return withByte(bytes, index, bytes[index] ^ 1);
}

function withByte(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] = value;
  return copy;
}
