/**
 * The cached `token` path loads no network code and no `node:`/npm module (SPEC.md §8: each
 * wakes a layer that costs more than the whole keychain read). Checked on the real module
 * graph: everything `src/main.ts` reaches through static imports, plus the `token` verb
 * module it imports dynamically, and their static imports.
 */
import assert from "node:assert/strict";
import { moduleUrl, reachable } from "./fixtures/module_graph.ts";

Deno.test("startup: the cached token path imports no node:, npm or OAuth module", async () => {
  const main = await reachable(["src/main.ts"]);
  const token = await reachable(["src/cli/token.ts"]);
  const all = [...main, ...token];
  const offenders = all.filter((s) =>
    s.startsWith("node:") || s.startsWith("npm:") || s.includes("/src/oauth/") ||
    s.includes("/src/lock/") || s.includes("/src/term/") || s.includes("/src/cli/dispatch.ts")
  );
  assert.deepEqual(
    offenders,
    [],
    `statically reachable from the token path: ${offenders.join(", ")}`,
  );
  assert.ok(
    token.has(moduleUrl("src/token/get_token.ts")),
    "sanity: the walk found the use case",
  );
});
