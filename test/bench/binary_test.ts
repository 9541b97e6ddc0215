/**
 * `test/bench/binary.ts`, the release job's cached-path measurement of the compiled binary.
 * No `denort` can be had here, so the compiled mode runs against stand-ins: the "binary" is a
 * shell script that runs the CLI from source, and the empty program is really compiled with
 * `deno compile`, into a stand-in runtime (`true`, as test/dist_compile_test.ts does). What that
 * leaves untested is only the real runtime's start-up, which the release job measures.
 */
import assert from "node:assert/strict";
import { cliArgv, ROOT, secretServiceTest } from "../harness.ts";
import { compileArgs, V8_FLAGS } from "../../dist/compile.ts";
import denoJson from "../../deno.json" with { type: "json" };
import { hostTarget } from "../../dist/lib/targets.ts";
import { type BinaryResult, emptyCompileArgs, renderSummary } from "./binary.ts";

const SCRIPT = `${ROOT}/test/bench/binary.ts`;

async function runScript(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "-A", SCRIPT, ...args],
    env: { GITHUB_STEP_SUMMARY: "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("bench binary: the empty program is compiled with the binary's own flags", () => {
  const target = hostTarget();
  if (!target) return;
  const binary = compileArgs(target, "/out/x", "/b/main.js");
  const empty = emptyCompileArgs("/out/empty");
  for (
    const flag of ["--config", `${ROOT}/deno.json`, "-P=cli", "--frozen", `--v8-flags=${V8_FLAGS}`]
  ) {
    assert.ok(binary.includes(flag) && empty.includes(flag), flag);
  }
  // Its own app name: the two programs' V8 code caches must not collide.
  assert.notEqual(empty[empty.indexOf("--app-name") + 1], "agent-runner-auth");
});

Deno.test("the binary and `deno task cli` (the bench, the E2E tests) run with the same V8 flags", () => {
  assert.ok(denoJson.tasks.cli.command.split(/\s+/).includes(`--v8-flags=${V8_FLAGS}`));
  const target = hostTarget();
  if (target) {
    assert.ok(compileArgs(target, "/out/x", "/b/main.js").includes(`--v8-flags=${V8_FLAGS}`));
  }
});

Deno.test("bench binary: the summary names the ratio and every program", () => {
  const s = (median: number) => ({ n: 3, median, p90: median + 1, min: median - 1 });
  const result: BinaryResult = {
    mode: "compiled",
    rounds: 3,
    token: s(24),
    empty: s(20),
    secretTool: s(10),
    ratio: 1.2,
    ratioVsSecretTool: 2.4,
    load: "0.5 0.4 0.3",
  };
  const text = renderSummary(result);
  assert.match(text, /^### Cached `token`, the compiled binary: 1\.2× an empty program/);
  assert.match(
    text,
    /\| `token`, cached \| 24\.0 ms \| 25\.0 ms \| 1\.2× empty, 2\.4× secret-tool \|/,
  );
  assert.match(text, /\| empty program \| 20\.0 ms \|/);
  assert.match(text, /\| `secret-tool lookup` \| 10\.0 ms \|/);
});

Deno.test("bench binary: a bad command line is one usage line and exit 2", async () => {
  for (const args of [[], ["--source", "--binary", "x"], ["--source", "--rounds", "0"]]) {
    const r = await runScript(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, /^usage: binary\.ts/);
  }
});

secretServiceTest(
  "bench binary: from source, two rounds measure token and the empty script",
  async () => {
    const r = await runScript(["--source", "--rounds", "2", "--warmup", "1", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const result: BinaryResult = JSON.parse(r.stdout);
    assert.equal(result.mode, "source");
    for (const s of [result.token, result.empty, result.secretTool]) assert.equal(s.n, 2);
    assert.ok(result.ratio > 0);
  },
);

const hostTrue = ["/usr/bin/true", "/bin/true"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

if (Deno.build.os === "linux" && hostTrue) {
  secretServiceTest(
    "bench binary: compiled mode (stand-in binary and runtime: no denort here) writes the job summary",
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "ara-bench-binary-" });
      try {
        // The "binary": the CLI from source behind a shell script, called as `<binary> token`.
        const binary = `${dir}/agent-runner-auth`;
        const argv = [Deno.execPath(), ...cliArgv()].map((w) => `'${w}'`).join(" ");
        await Deno.writeTextFile(binary, `#!/bin/sh\nexec ${argv} "$@"\n`, { mode: 0o755 });
        const summary = `${dir}/summary.md`;
        await Deno.writeTextFile(summary, "earlier step\n");
        const r = await runScript(
          ["--binary", binary, "--rounds", "2", "--warmup", "1"],
          { GITHUB_STEP_SUMMARY: summary, DENORT_BIN: await Deno.realPath(hostTrue) },
        );
        assert.equal(r.code, 0, r.stderr);
        const text = await Deno.readTextFile(summary);
        assert.ok(text.startsWith("earlier step\n### Cached `token`, the compiled binary: "));
        assert.ok(text.includes(r.stdout.trim()), "the summary holds what was printed");
        assert.match(text, /\| `token`, cached \| \d+\.\d ms \|/);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
