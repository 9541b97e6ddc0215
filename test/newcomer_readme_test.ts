/**
 * What a newcomer reads first agrees with what runs (issue 13 points 9 and 13): the README's two
 * commands use the Deno pinned in `.deno-version` (the one place it is kept); the packages the
 * README names are the ones `test/setup.ts` installs and `.ci/run` installs; the verbs table
 * has every verb; the README and `login --help` show one example scope.
 */
import assert from "node:assert/strict";
import { loginVerb } from "../src/cli/login.ts";
import { DEMO_PACKAGES, TEST_PACKAGES } from "../test/setup.ts";
import { DIST_APT_PACKAGES } from "./fixtures/dist/helpers.ts";
import denoJson from "../deno.json" with { type: "json" };

const ROOT = new URL("..", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

Deno.test("newcomer: the README's two commands quote the Deno pinned in .deno-version", async () => {
  const pinned = (await read(".deno-version")).trim();
  assert.match(pinned, /^\d+\.\d+\.\d+$/);
  const readme = await read("README.md");
  const fresh = readme.slice(readme.indexOf("## On a fresh machine"), readme.indexOf("## Install"));
  assert.match(
    fresh,
    new RegExp(`^npx -y deno@${pinned.replaceAll(".", "\\.")} task demo\\b`, "m"),
  );
  assert.match(
    fresh,
    new RegExp(`^npx -y deno@${pinned.replaceAll(".", "\\.")} task test\\b`, "m"),
  );
  // no other Deno version anywhere in the README's words
  for (const m of readme.matchAll(/\bdeno@(\d+\.\d+\.\d+)|Deno (\d+\.\d+\.\d+) already/g)) {
    assert.equal(m[1] ?? m[2], pinned, m[0]);
  }
  // the tasks set up first, and build the bundle they run (dist/bundle.ts)
  assert.deepEqual(denoJson.tasks.test.dependencies, ["setup:test", "bundle"]);
  assert.deepEqual(denoJson.tasks.demo.dependencies, ["setup:demo", "bundle"]);
  assert.match(denoJson.tasks["setup:test"].command, /test\/setup\.ts test$/);
  assert.match(denoJson.tasks["setup:demo"].command, /test\/setup\.ts demo$/);
  // and .ci/run takes Deno from the same file
  assert.match(await read(".ci/run"), /\.deno-version/);
});

Deno.test("newcomer: the README, test/setup.ts and .ci/run name the same Debian packages", async () => {
  const readme = await read("README.md");
  const fresh = readme.slice(readme.indexOf("## On a fresh machine"), readme.indexOf("## Install"))
    .replace(/\s+/g, " ");
  for (const p of TEST_PACKAGES) assert.ok(fresh.includes(p), `README names ${p}`);
  for (const p of DEMO_PACKAGES) assert.ok(TEST_PACKAGES.includes(p), `tests need the demo's ${p}`);
  for (const p of DIST_APT_PACKAGES) assert.ok(TEST_PACKAGES.includes(p), `setup installs ${p}`);
  const ci = /for pkg in ([^;]+); do/.exec(await read(".ci/run"))?.[1].split(/\s+/) ?? [];
  for (const p of TEST_PACKAGES) assert.ok(ci.includes(p), `.ci/run installs ${p}`);
  assert.match(fresh, /about [\d.–-]+ minutes on 2 cores/, "the suite's duration");
  assert.match(
    fresh,
    /not the benchmark's figure/,
    "why the demo's cached timing differs from the benchmark's",
  );
});

Deno.test("newcomer: the verbs table has every verb, setup claude included", async () => {
  const readme = await read("README.md");
  const table = readme.slice(readme.indexOf("## Other verbs"), readme.indexOf("`status --json`"));
  for (const verb of ["login", "status", "refresh", "logout", "doctor", "setup claude"]) {
    assert.match(table, new RegExp(`^\\| \`${verb}\\b`, "m"), verb);
  }
});

Deno.test("newcomer: one example scope in the README and login --help", async () => {
  const readme = await read("README.md");
  const scopes = new Set([
    ...[...readme.matchAll(/--scope "(openid[^"]*)"/g)].map((m) => m[1]),
    ...[...loginVerb.usage.matchAll(/--scope "(openid[^"]*)"/g)].map((m) => m[1]),
    ...[...readme.matchAll(/e\.g\. `(openid[^`]*)`/g)].map((m) => m[1]),
  ]);
  assert.deepEqual([...scopes], ["openid email profile proxy/invoke"]);
});
