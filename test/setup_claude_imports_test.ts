/**
 * `setup claude` edits settings with npm `jsonc-parser` (issue 13 item 10), which must stay off
 * every path that does not edit or inspect Claude's settings: the cached `token` path above all
 * (SPEC.md §8), and `setup`'s and `doctor`'s own start. Checked on the real module graph, as in
 * test/startup_imports_test.ts; and the whole graph, dynamic imports included (what
 * `deno compile` embeds), must still hold it, or the binary's `setup claude` would fail.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);

interface Module {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** Every module reachable from `entry`: by static imports only, or by any import. */
async function closure(entry: string, withDynamic: boolean): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(entry, ROOT).pathname],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "null",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: Module[] };
  const byName = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const walk = (spec: string) => {
    if (seen.has(spec)) return;
    seen.add(spec);
    for (const d of byName.get(spec)?.dependencies ?? []) {
      if ((withDynamic || !d.isDynamic) && d.code) walk(d.code.specifier);
    }
  };
  walk(new URL(entry, ROOT).href);
  return [...seen];
}

const isEditor = (s: string) => s.includes("jsonc-parser") || s.includes("/src/claude/");

Deno.test("setup claude imports: jsonc-parser is loaded only when settings are edited or inspected", async () => {
  for (
    const entry of ["src/main.ts", "src/cli/token.ts", "src/cli/setup.ts", "src/cli/doctor.ts"]
  ) {
    const offenders = (await closure(entry, false)).filter(isEditor);
    assert.deepEqual(offenders, [], `statically reachable from ${entry}: ${offenders.join(", ")}`);
  }
  const all = await closure("src/main.ts", true);
  assert.ok(all.some((s) => s.startsWith("npm:") && s.includes("jsonc-parser")), "in the graph");
  assert.ok(all.some((s) => s.endsWith("/src/claude/json_edit.ts")), "json_edit.ts in the graph");
});
