/**
 * The Homebrew formula and the winget manifests, generated from a sample SHA256SUMS
 * (test/fixtures/dist/SHA256SUMS): equal to the reviewed examples checked in under dist/,
 * valid Ruby and YAML, and pointing every platform at its own archive and checksum. Plus the
 * SHA256SUMS reader and writer they share.
 */
import assert from "node:assert/strict";
import { formula } from "../dist/homebrew/generate.ts";
import { manifestDir, manifests, PACKAGE_ID } from "../dist/winget/generate.ts";
import { formatSums, parseSums, readSums, writeSha256Sums } from "../dist/checksums.ts";
import { ROOT, run, runOk, testWith, withTempDir } from "./fixtures/dist/helpers.ts";

const SUMS_PATH = `${ROOT}/test/fixtures/dist/SHA256SUMS`;
const VERSION = "0.1.0";
const RELEASE_DATE = "2025-01-15";
const EXAMPLE_FORMULA = `${ROOT}/dist/homebrew/agent-runner-auth.rb`;
const EXAMPLE_WINGET = `${ROOT}/dist/winget/${manifestDir(VERSION)}`;
const REGENERATE = "regenerate the examples: deno run -A dist/homebrew/generate.ts --sums " +
  "test/fixtures/dist/SHA256SUMS --version 0.1.0 --out dist/homebrew/agent-runner-auth.rb && " +
  "deno run -A dist/winget/generate.ts --sums test/fixtures/dist/SHA256SUMS --version 0.1.0 " +
  "--release-date 2025-01-15 --out dist/winget";

const sums = await readSums(SUMS_PATH);
const url = (file: string) =>
  `https://github.com/copebit/agent-runner-auth/releases/download/v${VERSION}/${file}`;

Deno.test("SHA256SUMS: parse, format, reject malformed lines, hash release artifacts only", async () => {
  const text = await Deno.readTextFile(SUMS_PATH);
  assert.equal(formatSums(parseSums(text)), text, "round trip, sorted");
  const upper = parseSums(`${"AB".repeat(32)} *bin.zip\n`);
  assert.equal(upper.get("bin.zip"), "ab".repeat(32));
  assert.throws(() => parseSums("abc  file\n"), /SHA256SUMS line 1 is not/);
  await withTempDir(async (dir) => {
    for (
      const f of [
        "agent-runner-auth-1.0.0-x86_64-pc-windows-msvc.zip",
        "agent-runner-auth_1.0.0-1_amd64.deb",
        "install.sh",
        "agent-runner-auth-1.0.0-x86_64-unknown-linux-gnu",
        "notes.txt",
      ]
    ) {
      await Deno.writeTextFile(`${dir}/${f}`, f);
    }
    const r = await run(Deno.execPath(), ["run", "-q", "-A", `${ROOT}/dist/checksums.ts`, dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...(await readSums(`${dir}/SHA256SUMS`)).keys()], [
      "agent-runner-auth-1.0.0-x86_64-pc-windows-msvc.zip",
      "agent-runner-auth_1.0.0-1_amd64.deb",
      "install.sh",
    ]);
    const only = await writeSha256Sums(dir, ["notes.txt"]);
    assert.deepEqual([...only.keys()], ["notes.txt"]);
  });
});

Deno.test("homebrew: the generated formula is the checked-in example", async () => {
  const text = formula({ version: VERSION, sums, sumsSource: SUMS_PATH });
  assert.equal(text, await Deno.readTextFile(EXAMPLE_FORMULA), REGENERATE);
  assert.match(text, /^class AgentRunnerAuth < Formula$/m);
  assert.match(text, /^ {4}bin\.install "agent-runner-auth"$/m);
  assert.match(
    text,
    /test do\n\s+assert_match "agent-runner-auth #\{version\}", shell_output\("#\{bin\}\/agent-runner-auth --version"\)/,
  );
  assert.throws(
    () => formula({ version: "0.2.0", sums, sumsSource: SUMS_PATH }),
    /SHA256SUMS has no entry for agent-runner-auth-0\.2\.0-aarch64-apple-darwin\.tar\.gz/,
  );
});

testWith(
  ["ruby"],
  "homebrew: valid Ruby; each platform gets its archive, install and test do",
  async () => {
    await runOk("ruby", ["-c", EXAMPLE_FORMULA]);
    const r = await runOk("ruby", [
      `${ROOT}/test/fixtures/dist/formula_harness.rb`,
      EXAMPLE_FORMULA,
    ]);
    const got = JSON.parse(r.stdout);
    const expect = (target: string) => {
      const file = `agent-runner-auth-${VERSION}-${target}.tar.gz`;
      return { url: url(file), sha256: sums.get(file) };
    };
    assert.deepEqual(got.platforms, {
      "macos/arm": expect("aarch64-apple-darwin"),
      "macos/intel": expect("x86_64-apple-darwin"),
      "linux/arm": expect("aarch64-unknown-linux-gnu"),
      "linux/intel": expect("x86_64-unknown-linux-gnu"),
    });
    assert.deepEqual(got.installed, [["agent-runner-auth"]]);
    assert.deepEqual(got.test_commands, ["/prefix/bin/agent-runner-auth --version"]);
    assert.deepEqual(got.test_asserted, [`agent-runner-auth ${VERSION}`]);
    // brew audit: no `version` line that repeats the URLs; Homebrew reads it from them
    assert.equal(got.fields.version, undefined);
    assert.equal(got.version, VERSION);
    assert.deepEqual(got.livecheck, { url: "stable", strategy: "github_latest" });
    assert.ok(got.fields.desc.length <= 80 && !/\.$/.test(got.fields.desc), "brew audit: desc");
    assert.equal(got.caveats_macos, null);
    assert.match(got.caveats_linux, /libsecret/);
  },
);

Deno.test("winget: the generated manifests are the checked-in example", async () => {
  const files = manifests({
    version: VERSION,
    sums,
    sumsSource: SUMS_PATH,
    releaseDate: RELEASE_DATE,
  });
  assert.deepEqual([...files.keys()].sort(), [
    `${PACKAGE_ID}.installer.yaml`,
    `${PACKAGE_ID}.locale.en-US.yaml`,
    `${PACKAGE_ID}.yaml`,
  ]);
  for (const [name, text] of files) {
    assert.equal(
      text,
      await Deno.readTextFile(`${EXAMPLE_WINGET}/${name}`),
      `${name}: ${REGENERATE}`,
    );
  }
  assert.equal(manifestDir("1.2.3"), "manifests/c/copebit/AgentRunnerAuth/1.2.3");
  assert.throws(
    () => manifests({ version: "9.9.9", sums, sumsSource: SUMS_PATH, releaseDate: RELEASE_DATE }),
    /has no entry for agent-runner-auth-9\.9\.9-x86_64-pc-windows-msvc\.zip/,
  );
});

testWith(["ruby"], "winget: the manifests parse as YAML with the fields winget needs", async () => {
  const load = async (name: string) => {
    const r = await runOk("ruby", [
      "-ryaml",
      "-rjson",
      "-rdate",
      "-e",
      "puts JSON.generate(YAML.safe_load(File.read(ARGV[0]), permitted_classes: [Date]))",
      `${EXAMPLE_WINGET}/${name}`,
    ]);
    return JSON.parse(r.stdout);
  };
  const version = await load(`${PACKAGE_ID}.yaml`);
  const installer = await load(`${PACKAGE_ID}.installer.yaml`);
  const locale = await load(`${PACKAGE_ID}.locale.en-US.yaml`);
  for (
    const [doc, type] of [[version, "version"], [installer, "installer"], [locale, "defaultLocale"]]
  ) {
    assert.equal(doc.PackageIdentifier, PACKAGE_ID);
    assert.equal(doc.PackageVersion, VERSION, "a string, not a number");
    assert.equal(doc.ManifestType, type);
    assert.ok(
      Number(doc.ManifestVersion.split(".")[0]) >= 1 &&
        Number(doc.ManifestVersion.split(".")[1]) >= 6,
    );
  }
  assert.equal(version.DefaultLocale, "en-US");
  assert.equal(installer.InstallerType, "zip");
  assert.equal(installer.NestedInstallerType, "portable");
  assert.deepEqual(installer.NestedInstallerFiles, [
    { RelativeFilePath: "agent-runner-auth.exe", PortableCommandAlias: "agent-runner-auth" },
  ]);
  const zip = `agent-runner-auth-${VERSION}-x86_64-pc-windows-msvc.zip`;
  assert.deepEqual(installer.Installers, [
    { Architecture: "x64", InstallerUrl: url(zip), InstallerSha256: sums.get(zip)!.toUpperCase() },
  ]);
  assert.equal(installer.ReleaseDate, RELEASE_DATE);
  assert.equal(locale.PackageLocale, "en-US");
  for (const field of ["Publisher", "PackageName", "License", "ShortDescription"]) {
    assert.ok(typeof locale[field] === "string" && locale[field].length > 0, field);
  }
  assert.ok(locale.ShortDescription.length <= 256);
});

Deno.test("winget and homebrew CLIs write into dist/out-style directories", async () => {
  await withTempDir(async (dir) => {
    let r = await run(Deno.execPath(), [
      "run",
      "-q",
      "-A",
      `${ROOT}/dist/winget/generate.ts`,
      "--sums",
      SUMS_PATH,
      "--version",
      VERSION,
      "--out",
      `${dir}/winget`,
    ], { env: { SOURCE_DATE_EPOCH: "1736942400" } });
    assert.equal(r.code, 0, r.stderr);
    const installer = await Deno.readTextFile(
      `${dir}/winget/${manifestDir(VERSION)}/${PACKAGE_ID}.installer.yaml`,
    );
    assert.match(installer, /^ReleaseDate: 2025-01-15$/m);

    r = await run(Deno.execPath(), [
      "run",
      "-q",
      "-A",
      `${ROOT}/dist/homebrew/generate.ts`,
      "--sums",
      SUMS_PATH,
      "--version",
      VERSION,
      "--base-url",
      "https://mirror.example/releases",
      "--out",
      `${dir}/brew/agent-runner-auth.rb`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      await Deno.readTextFile(`${dir}/brew/agent-runner-auth.rb`),
      /url "https:\/\/mirror\.example\/releases\/download\/v0\.1\.0\/agent-runner-auth-0\.1\.0-aarch64-apple-darwin\.tar\.gz"/,
    );

    r = await run(Deno.execPath(), [
      "run",
      "-q",
      "-A",
      `${ROOT}/dist/homebrew/generate.ts`,
      "--sums",
      `${dir}/none`,
    ]);
    assert.equal(r.code, 1);
  });
});
