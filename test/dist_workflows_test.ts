/**
 * What can be checked here of the parts that only run on GitHub's runners: the workflows parse,
 * every script and file they name exists, their shell steps pass shellcheck; the macOS
 * signing script passes shellcheck and the entitlements are exactly the JIT set V8 needs.
 */
import assert from "node:assert/strict";
import { ROOT, runOk, testWith, withTempDir } from "./fixtures/dist/helpers.ts";

const WORKFLOWS = [`${ROOT}/.github/workflows/release.yml`, `${ROOT}/.github/workflows/ci.yml`];

/** Each workflow's shell `run:` steps (not pwsh), `${{ … }}` replaced by a word. */
async function shellSteps(workflow: string): Promise<{ name: string; script: string }[]> {
  const r = await runOk("ruby", [
    "-ryaml",
    "-rjson",
    "-e",
    `y = YAML.load_file(ARGV[0])
     out = []
     y["jobs"].each do |job, j|
       (j["steps"] || []).each_with_index do |s, i|
         next unless s["run"] && s["shell"] != "pwsh"
         out << { name: "#{job}[#{i}] #{s["name"]}", script: s["run"] }
       end
     end
     puts JSON.generate(out)`,
    workflow,
  ]);
  return JSON.parse(r.stdout);
}

testWith(["ruby", "shellcheck"], "workflows: valid YAML, shell steps pass shellcheck", async () => {
  await withTempDir(async (dir) => {
    for (const wf of WORKFLOWS) {
      const steps = await shellSteps(wf);
      assert.ok(steps.length > 3, wf);
      for (const [i, step] of steps.entries()) {
        const file = `${dir}/step${i}.sh`;
        // GitHub runs `bash -e {0}` with pipefail; expressions become a plain word.
        await Deno.writeTextFile(
          file,
          `#!/bin/bash\nset -eo pipefail\n${step.script.replace(/\$\{\{[^}]*\}\}/g, "X")}`,
        );
        const r = await new Deno.Command("shellcheck", {
          args: ["--shell=bash", "--exclude=SC2034", file],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(r.success, `${wf} ${step.name}:\n${new TextDecoder().decode(r.stdout)}`);
      }
    }
  });
});

Deno.test("workflows: every dist/ script and test file they name exists", async () => {
  for (const wf of WORKFLOWS) {
    const text = await Deno.readTextFile(wf);
    const paths = new Set(
      [...text.matchAll(/(?<![\w/.-])((?:dist|src|test)\/[\w./-]+\.(?:ts|sh|plist))\b/g)].map((m) =>
        m[1]
      ),
    );
    assert.ok(paths.size > 0);
    for (const p of paths) {
      if (p.includes("*")) continue;
      await Deno.stat(`${ROOT}/${p}`).catch(() =>
        assert.fail(`${wf} names ${p}, which does not exist`)
      );
    }
  }
  const release = await Deno.readTextFile(WORKFLOWS[0]);
  assert.match(release, /tags: \["v\*"\]/);
  assert.match(release, /jq -r \.version deno\.json/, "the tag is checked against deno.json");
  assert.match(release, /\.deno-version/, "Deno comes from the pinned version");
  for (
    const secret of ["MACOS_CERT_P12", "MACOS_CERT_PASSWORD", "MACOS_SIGN_IDENTITY", "APT_GPG_KEY"]
  ) {
    assert.match(release, new RegExp(`secrets\\.${secret}\\b`), secret);
  }
});

testWith(["bash", "shellcheck"], "macOS signing script: bash syntax and shellcheck", async () => {
  await runOk("bash", ["-n", `${ROOT}/dist/macos/sign.sh`]);
  await runOk("shellcheck", ["--shell=bash", `${ROOT}/dist/macos/sign.sh`]);
  await runOk("shellcheck", ["--shell=sh", `${ROOT}/dist/deb/import_key.sh`]);
  const text = await Deno.readTextFile(`${ROOT}/dist/macos/sign.sh`);
  assert.match(text, /--options runtime/, "hardened runtime");
  assert.match(text, /--entitlements "\$ENTITLEMENTS"/);
  assert.match(text, /--version/, "launch smoke test after signing");
  assert.match(text, /::warning[^\n]*ad.hoc/i, "ad-hoc fallback says so in the log");
});

testWith(["ruby"], "macOS entitlements: a plist with exactly V8's JIT entitlements", async () => {
  const r = await runOk("ruby", [
    "-rrexml/document",
    "-rjson",
    "-e",
    `doc = REXML::Document.new(File.read(ARGV[0]))
     dict = doc.root.elements["dict"]
     pairs = {}
     dict.elements.each_slice(2) { |k, v| pairs[k.text] = v.name }
     puts JSON.generate({ root: doc.root.name, pairs: pairs })`,
    `${ROOT}/dist/macos/entitlements.plist`,
  ]);
  const { root, pairs } = JSON.parse(r.stdout);
  assert.equal(root, "plist");
  assert.deepEqual(pairs, {
    "com.apple.security.cs.allow-jit": "true",
    "com.apple.security.cs.allow-unsigned-executable-memory": "true",
    "com.apple.security.cs.disable-executable-page-protection": "true",
  });
});
