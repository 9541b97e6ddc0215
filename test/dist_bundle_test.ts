/**
 * `dist/bundle.ts`, the program every task runs (issue 14): a stale or missing bundle is named
 * in one line, and a bundle built anywhere records the digest of the current sources and maps
 * its chunks back to the repository's files.
 */
import assert from "node:assert/strict";
import { buildBundle, ROOT, sourceDigest, staleBundleReason } from "../dist/bundle.ts";

Deno.test("bundle: a missing bundle, or one built from other sources, is named with the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.match(
      (await staleBundleReason(`${dir}/none`))!,
      /has no bundle: run `deno task bundle`/,
    );
    await Deno.writeTextFile(`${dir}/SOURCES`, "0".repeat(64) + "\n");
    assert.match((await staleBundleReason(dir))!, /built from other sources.*`deno task bundle`/);
    await Deno.writeTextFile(`${dir}/SOURCES`, `${await sourceDigest()}\n`);
    assert.equal(await staleBundleReason(dir), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bundle: built outside the repository, it records the digest and maps to the sources", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const digest = await buildBundle(`${dir}/b`);
    assert.equal((await Deno.readTextFile(`${dir}/b/SOURCES`)).trim(), digest);
    assert.equal(await staleBundleReason(`${dir}/b`), null);
    const map = JSON.parse(await Deno.readTextFile(`${dir}/b/main.js.map`));
    assert.deepEqual(map.sources, [`file://${ROOT}/src/main.ts`]);
    // The staging copy is gone, and nothing but the bundle was left beside it.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
