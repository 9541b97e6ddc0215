/**
 * `setup claude` edits settings with npm `jsonc-parser` (issue 13 item 10), which must stay off
 * every path that does not edit or inspect Claude's settings: the cached `token` path above all
 * (SPEC.md §8), and `setup`'s and `doctor`'s own start. Checked on the real module graph, as in
 * test/startup_imports_test.ts; and the whole graph, dynamic imports included (what
 * `deno compile` embeds), must still hold it, or the binary's `setup claude` would fail.
 */
import assert from "node:assert/strict";
import { reachable } from "./fixtures/module_graph.ts";

const isEditor = (s: string) => s.includes("jsonc-parser") || s.includes("/src/claude/");

Deno.test("setup claude imports: jsonc-parser is loaded only when settings are edited or inspected", async () => {
  for (
    const entry of ["src/main.ts", "src/cli/token.ts", "src/cli/setup.ts", "src/cli/doctor.ts"]
  ) {
    const offenders = [...await reachable([entry])].filter(isEditor);
    assert.deepEqual(offenders, [], `statically reachable from ${entry}: ${offenders.join(", ")}`);
  }
  const all = [...await reachable(["src/main.ts"], { dynamic: true })];
  assert.ok(all.some((s) => s.startsWith("npm:") && s.includes("jsonc-parser")), "in the graph");
  assert.ok(all.some((s) => s.endsWith("/src/claude/json_edit.ts")), "json_edit.ts in the graph");
});
