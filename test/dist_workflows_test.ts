/**
 * What can be checked here of the parts that only run on GitHub's runners: the workflows parse,
 * every script and file they name exists, their shell steps pass shellcheck; the macOS
 * signing script passes shellcheck and the entitlements are exactly the JIT set V8 needs.
 */
import assert from "node:assert/strict";
import { ROOT, run, runOk, testWith, withTempDir } from "./fixtures/dist/helpers.ts";

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
  assert.match(text, /::warning[^\n]*ad.hoc/i, "an allowed ad-hoc build says so in the log");
  const code = text.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
  assert.doesNotMatch(code, /codesign[^\n]*\|\s*grep -q/, "no `codesign | grep -q` under pipefail");
});

/**
 * A directory of stand-ins for the macOS tools sign.sh calls (codesign, lipo, uname), none of
 * which exist here. `codesign --display --verbose=2` prints the runtime flag first and then
 * 200,000 more lines, exiting as its last writer does: a `codesign | grep -q` under pipefail
 * then fails with SIGPIPE (the old script did: "is not signed with the hardened runtime").
 */
async function fakeMacTools(dir: string): Promise<string> {
  const bin = `${dir}/fakebin`;
  await Deno.mkdir(bin);
  const tools: Record<string, string> = {
    codesign: `#!/bin/bash
case " $* " in
  *" --entitlements "*) echo "<key>com.apple.security.cs.allow-jit</key><key>com.apple.security.cs.allow-unsigned-executable-memory</key>" ;;
  *" --display "*) echo "Identifier=io.agent-runner.agent-runner-auth" >&2
    echo "CodeDirectory v=20500 size=1 flags=0x10000(runtime) hashes=1" >&2
    exec seq 1 200000 >&2 ;;
esac
exit 0
`,
    lipo: "#!/bin/sh\necho x86_64\n",
    uname: "#!/bin/sh\necho x86_64\n",
  };
  for (const [name, text] of Object.entries(tools)) {
    await Deno.writeTextFile(`${bin}/${name}`, text, { mode: 0o755 });
  }
  const binary = `${dir}/agent-runner-auth-0.1.0-x86_64-apple-darwin`;
  await Deno.writeTextFile(binary, "#!/bin/sh\necho 'agent-runner-auth 0.1.0'\n", { mode: 0o755 });
  return binary;
}

testWith(
  ["bash", "seq"],
  "macOS signing (stand-in codesign, real macOS untested here): no Developer ID fails the release unless MACOS_ALLOW_ADHOC=1; a long codesign output is no SIGPIPE failure",
  async () => {
    await withTempDir(async (dir) => {
      const binary = await fakeMacTools(dir);
      const env = { PATH: `${dir}/fakebin:${Deno.env.get("PATH")}`, EXPECTED_VERSION: "0.1.0" };
      const refused = await run("bash", [`${ROOT}/dist/macos/sign.sh`, binary], { env });
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /::error title=no Developer ID::.*MACOS_ALLOW_ADHOC=1/);
      for (let round = 0; round < 3; round++) {
        const adhoc = await run("bash", [`${ROOT}/dist/macos/sign.sh`, binary], {
          env: { ...env, MACOS_ALLOW_ADHOC: "1" },
        });
        assert.equal(adhoc.code, 0, adhoc.stdout + adhoc.stderr);
        assert.match(adhoc.stdout, /::warning title=macOS binaries signed ad hoc::/);
        assert.match(adhoc.stdout, /launch ok \(x86_64, adhoc\): agent-runner-auth 0\.1\.0/);
      }
    });
  },
);

/** The release workflow's step named `name`, as its shell script. */
async function releaseStep(name: string): Promise<string> {
  const steps = await shellSteps(WORKFLOWS[0]);
  const step = steps.find((s) => s.name.endsWith(` ${name}`));
  assert.ok(step, `no step "${name}"`);
  return step.script;
}

testWith(
  ["ruby", "bash"],
  "release: the apt check asks apt-cache with the same temporary source list it updated (stand-in apt)",
  async () => {
    const script = await releaseStep("Check the published repository with apt itself");
    await withTempDir(async (dir) => {
      const bin = `${dir}/fakebin`;
      await Deno.mkdir(bin);
      // apt-cache knows the package only when told to read the temporary list, as the real one.
      const stub = `#!/bin/bash
list=
while [ $# -gt 0 ]; do
  case $1 in -o) case $2 in Dir::Etc::SourceList=*) list=\${2#*=} ;; esac; shift 2 ;; *) shift ;; esac
done
if [ -n "$list" ] && grep -q "apt.example.test stable main" "$list"; then
  printf 'agent-runner-auth:\n  Installed: (none)\n  Candidate: 9.9.9-1\n'
else
  printf 'agent-runner-auth:\n  Installed: (none)\n  Candidate: (none)\n'
fi
`;
      await Deno.writeTextFile(`${bin}/apt-cache`, stub, { mode: 0o755 });
      await Deno.writeTextFile(`${bin}/apt-get`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      await Deno.writeTextFile(
        `${bin}/sudo`,
        '#!/bin/sh\n[ "$1" = install ] && exit 0\nexec "$@"\n',
        {
          mode: 0o755,
        },
      );
      const file = `${dir}/step.sh`;
      await Deno.writeTextFile(
        file,
        `set -eo pipefail\n${
          script.replace(/\$\{\{ needs\.version\.outputs\.version \}\}/g, "9.9.9")
        }`,
      );
      const r = await run("bash", [file], {
        env: {
          PATH: `${bin}:${Deno.env.get("PATH")}`,
          RUNNER_TEMP: dir,
          APT_URL: "https://apt.example.test",
        },
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /Candidate: 9\.9\.9-1/);
    });
  },
);

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
