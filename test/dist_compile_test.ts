/**
 * `dist/compile.ts`: the runtime rules, the exact `deno compile` flags, the archives and
 * SHA256SUMS built from stand-in executables, a real `deno compile` run against a stand-in
 * runtime (any ELF of the host's CPU: the flags and the permission set are accepted and the
 * output is packaged), and the one-line message when the runtime cannot be downloaded.
 */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import {
  buildTime,
  checkRuntime,
  chooseRuntime,
  compileArgs,
  executableKind,
  isMissingRuntime,
  packageRelease,
} from "../dist/compile.ts";
import { parseSums } from "../dist/checksums.ts";
import { crc32 } from "../dist/lib/archive.ts";
import { archiveName, binaryName, hostTarget, type Target, TARGETS } from "../dist/lib/targets.ts";
import {
  ROOT,
  run,
  runOk,
  standInBinary,
  testWith,
  which,
  withTempDir,
} from "./fixtures/dist/helpers.ts";

const VERSION = denoJson.version;

function header(size: number, fill: (v: DataView, b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer), b);
  return b;
}

Deno.test("compile: executableKind tells ELF, Mach-O and PE apart, with the CPU", () => {
  const elf = (machine: number) =>
    header(64, (v, b) => {
      v.setUint32(0, 0x7f454c46);
      b[4] = 2;
      b[5] = 1;
      v.setUint16(18, machine, true);
    });
  const macho = (cpu: number) =>
    header(32, (v) => {
      v.setUint32(0, 0xfeedfacf, true);
      v.setUint32(4, cpu, true);
    });
  const pe = (machine: number) =>
    header(256, (v, b) => {
      b[0] = 0x4d;
      b[1] = 0x5a;
      v.setUint32(0x3c, 0x80, true);
      v.setUint32(0x80, 0x50450000);
      v.setUint16(0x84, machine, true);
    });
  assert.equal(executableKind(elf(0x3e)), "elf/x86_64");
  assert.equal(executableKind(elf(0xb7)), "elf/aarch64");
  assert.equal(executableKind(macho(0x01000007)), "macho/x86_64");
  assert.equal(executableKind(macho(0x0100000c)), "macho/aarch64");
  assert.equal(executableKind(pe(0x8664)), "pe/x86_64");
  assert.equal(executableKind(pe(0xaa64)), "pe/aarch64");
  assert.equal(executableKind(elf(0x28)), "elf/unknown(0x28)");
  assert.equal(executableKind(new TextEncoder().encode("#!/bin/sh\necho hi\n")), undefined);
  assert.equal(executableKind(new Uint8Array()), undefined);
});

Deno.test("compile: DENORT_BIN_<TARGET> wins; DENORT_BIN only serves the host target", () => {
  const host: Target = "x86_64-unknown-linux-gnu";
  const env = {
    DENORT_BIN: "/rt/host",
    DENORT_BIN_AARCH64_APPLE_DARWIN: "/rt/mac-arm",
  };
  assert.deepEqual(chooseRuntime("x86_64-unknown-linux-gnu", env, host), {
    path: "/rt/host",
    from: "DENORT_BIN",
  });
  assert.deepEqual(chooseRuntime("aarch64-apple-darwin", env, host), {
    path: "/rt/mac-arm",
    from: "DENORT_BIN_AARCH64_APPLE_DARWIN",
  });
  // not given: Deno's own cache or download, never the host's runtime injected into a macOS build
  assert.deepEqual(chooseRuntime("x86_64-apple-darwin", env, host), {});
  assert.deepEqual(
    chooseRuntime(host, { ...env, DENORT_BIN_X86_64_UNKNOWN_LINUX_GNU: "/rt/x" }, host).path,
    "/rt/x",
  );
});

Deno.test("compile: a runtime of the wrong format or the deno CLI itself is refused in one line", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/script`, "#!/bin/sh\n");
    await assert.rejects(
      checkRuntime("aarch64-apple-darwin", { path: `${dir}/script`, from: "DENORT_BIN_X" }),
      /^Error: DENORT_BIN_X=.*script is not an executable, but aarch64-apple-darwin needs macho\/aarch64 \(denort-aarch64-apple-darwin\.zip\)$/,
    );
    await assert.rejects(
      checkRuntime("x86_64-pc-windows-msvc", { path: `${dir}/none`, from: "DENORT_BIN" }),
      /DENORT_BIN=.*none: no such file/,
    );
    await assert.rejects(
      checkRuntime(hostTarget() ?? "x86_64-unknown-linux-gnu", {
        path: Deno.execPath(),
        from: "DENORT_BIN",
      }),
      /is the deno CLI itself, not denort/,
    );
  });
});

Deno.test("compile: deno compile gets -P=cli, --frozen, the target, and keeps type-checking", () => {
  const args = compileArgs("aarch64-apple-darwin", "/out/x", "/tmp/b/main.js");
  assert.equal(args[0], "compile");
  assert.ok(args.includes("-P=cli"));
  assert.ok(args.includes("--frozen"));
  assert.ok(args.includes("-q"));
  assert.ok(!args.some((a) => a.startsWith("--no-check")), "--no-check is not wanted");
  assert.ok(!args.some((a) => /^--allow-|^-A$/.test(a)), "permissions come only from the set");
  assert.deepEqual(args.slice(args.indexOf("--target"), args.indexOf("--target") + 2), [
    "--target",
    "aarch64-apple-darwin",
  ]);
  assert.equal(args[args.indexOf("--output") + 1], "/out/x");
  assert.equal(args.at(-1), "/tmp/b/main.js", "the bundle, as the tests run it");
  // the same set `deno task cli` runs with (the E2E tests run that command)
  assert.ok(denoJson.permissions.cli);
  assert.match(denoJson.tasks.cli.command, /-P=cli/);
});

Deno.test("compile: the missing-runtime detector matches Deno's download error", () => {
  assert.ok(
    isMissingRuntime(
      "error sending request for url (https://dl.deno.land/release/v2.9.5/denort-aarch64-apple-darwin.zip)",
    ),
  );
  assert.ok(!isMissingRuntime("error: Type checking failed."));
});

Deno.test("compile: SOURCE_DATE_EPOCH stamps the archives", () => {
  assert.equal(
    buildTime({ SOURCE_DATE_EPOCH: "1700000000" }).toISOString(),
    "2023-11-14T22:13:20.000Z",
  );
  assert.throws(() => buildTime({ SOURCE_DATE_EPOCH: "yesterday" }), /not a number/);
});

/** Stand-in binaries for every target in `dir`, named as deno compile names them. */
async function standIns(dir: string, version: string): Promise<Map<Target, string>> {
  const map = new Map<Target, string>();
  for (const { target } of TARGETS) {
    const path = `${dir}/${binaryName(version, target)}`;
    await Deno.writeFile(path, standInBinary(version), { mode: 0o755 });
    map.set(target, path);
  }
  return map;
}

testWith(
  ["tar", "unzip", "sha256sum"],
  "compile: archives and SHA256SUMS from stand-in binaries",
  async () => {
    await withTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/bin`);
      await Deno.writeTextFile(`${dir}/README.md`, "# readme\n");
      await Deno.writeTextFile(`${dir}/LICENSE`, "licence\n");
      const binaries = await standIns(`${dir}/bin`, "1.2.3");
      const mtime = new Date("2025-03-04T05:06:08Z");
      const opts = {
        version: "1.2.3",
        outDir: `${dir}/out`,
        binaries,
        docs: [`${dir}/README.md`, `${dir}/LICENSE`],
        mtime,
      };
      const names = await packageRelease(opts);
      assert.deepEqual(names, [
        "agent-runner-auth-1.2.3-x86_64-unknown-linux-gnu.tar.gz",
        "agent-runner-auth-1.2.3-aarch64-unknown-linux-gnu.tar.gz",
        "agent-runner-auth-1.2.3-x86_64-apple-darwin.tar.gz",
        "agent-runner-auth-1.2.3-aarch64-apple-darwin.tar.gz",
        "agent-runner-auth-1.2.3-x86_64-pc-windows-msvc.zip",
      ]);

      // sha256sum itself agrees with every line
      const check = await runOk("sha256sum", ["-c", "--strict", "SHA256SUMS"], {
        cwd: `${dir}/out`,
      });
      assert.equal(check.stdout.trim().split("\n").length, 5);
      assert.deepEqual(
        [...parseSums(await Deno.readTextFile(`${dir}/out/SHA256SUMS`)).keys()],
        [...names].sort(),
      );

      // tar: flat, root-owned, modes kept, one mtime; the binary runs after extraction
      const listing = await runOk("tar", ["-tvzf", `${dir}/out/${names[0]}`], {
        env: { TZ: "UTC" },
      });
      const rows = listing.stdout.trim().split("\n").map((l) => l.split(/\s+/));
      assert.deepEqual(rows.map((r) => [r[0], r[1], r.at(-1)]), [
        ["-rwxr-xr-x", "root/root", "agent-runner-auth"],
        ["-rw-r--r--", "root/root", "README.md"],
        ["-rw-r--r--", "root/root", "LICENSE"],
      ]);
      assert.ok(rows.every((r) => r[3] === "2025-03-04" && r[4] === "05:06"));
      await Deno.mkdir(`${dir}/x`);
      await runOk("tar", ["-xzf", `${dir}/out/${names[3]}`, "-C", `${dir}/x`]);
      assert.equal(
        (await runOk(`${dir}/x/agent-runner-auth`, ["--version"])).stdout,
        "agent-runner-auth 1.2.3\n",
      );

      // zip: unzip tests the CRCs, lists agent-runner-auth.exe at the top level
      const zipPath = `${dir}/out/${names[4]}`;
      await runOk("unzip", ["-tq", zipPath]);
      const z = await runOk("unzip", ["-Z1", zipPath]);
      assert.deepEqual(z.stdout.trim().split("\n"), [
        "agent-runner-auth.exe",
        "README.md",
        "LICENSE",
      ]);
      const exe = await runOk("unzip", ["-p", zipPath, "agent-runner-auth.exe"]);
      assert.equal(exe.stdout, new TextDecoder().decode(standInBinary("1.2.3")));

      // the same inputs give the same bytes
      const first = await Deno.readFile(`${dir}/out/${names[0]}`);
      const firstZip = await Deno.readFile(zipPath);
      await packageRelease(opts);
      assert.deepEqual(await Deno.readFile(`${dir}/out/${names[0]}`), first);
      assert.deepEqual(await Deno.readFile(zipPath), firstZip);
    });
  },
);

Deno.test("compile: crc32 matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

testWith(
  ["tar", "unzip"],
  "compile: --prebuilt packages a directory of binaries (the release path)",
  async () => {
    await withTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/in`);
      await standIns(`${dir}/in`, VERSION);
      const r = await run(Deno.execPath(), [
        "run",
        "-q",
        "-A",
        `${ROOT}/dist/compile.ts`,
        "--prebuilt",
        `${dir}/in`,
        "--out",
        `${dir}/out`,
      ], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
      assert.equal(r.code, 0, r.stderr);
      const files = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name).sort();
      assert.deepEqual(
        files,
        [
          "SHA256SUMS",
          ...TARGETS.map((t) => archiveName(VERSION, t.target)),
        ].sort(),
      );
      const zipList = await runOk("unzip", [
        "-Z1",
        `${dir}/out/${archiveName(VERSION, "x86_64-pc-windows-msvc")}`,
      ]);
      assert.ok(zipList.stdout.split("\n").includes("README.md"), "README.md from the repo root");

      const missing = await run(Deno.execPath(), [
        "run",
        "-q",
        "-A",
        `${ROOT}/dist/compile.ts`,
        "--prebuilt",
        `${dir}/nowhere`,
        "--target",
        "x86_64-apple-darwin",
        "--out",
        `${dir}/out2`,
      ]);
      assert.equal(missing.code, 1);
      assert.match(
        missing.stderr,
        /--prebuilt: .*nowhere\/agent-runner-auth-.*-x86_64-apple-darwin is missing/,
      );

      const bad = await run(Deno.execPath(), [
        "run",
        "-q",
        "-A",
        `${ROOT}/dist/compile.ts`,
        "--target",
        "mips-linux",
      ]);
      assert.equal(bad.code, 1);
      assert.match(
        bad.stderr,
        /Unknown target "mips-linux": expected one of x86_64-unknown-linux-gnu/,
      );
    });
  },
);

/**
 * A DENO_DIR sharing the real one's caches (npm packages, type-check cache) but not its `dl/`
 * folder, so no cached denort exists for deno compile to find.
 */
async function denoDirWithoutRuntimes(dir: string): Promise<string> {
  const info = await runOk(Deno.execPath(), ["info", "--json"]);
  const real = JSON.parse(info.stdout).denoDir as string;
  const fake = `${dir}/deno_dir`;
  await Deno.mkdir(fake);
  for (const e of Deno.readDirSync(real)) {
    if (e.name !== "dl") await Deno.symlink(`${real}/${e.name}`, `${fake}/${e.name}`);
  }
  // Everything Deno downloaded but its runtimes (dl/release/): esbuild, which `deno bundle`
  // runs before compiling, stays (dist/bundle.ts).
  await Deno.mkdir(`${fake}/dl`);
  for (
    const e of (() => {
      try {
        return [...Deno.readDirSync(`${real}/dl`)];
      } catch {
        return [];
      }
    })()
  ) {
    if (e.name !== "release") await Deno.symlink(`${real}/dl/${e.name}`, `${fake}/dl/${e.name}`);
  }
  return fake;
}

const host = hostTarget();
const hostTrue = ["/bin/true", "/usr/bin/true"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

if (Deno.build.os === "linux" && host && hostTrue) {
  Deno.test("compile: real deno compile with a stand-in runtime accepts -P=cli and packages the result", async () => {
    await withTempDir(async (dir) => {
      const envName = `DENORT_BIN_${host.toUpperCase().replaceAll("-", "_")}`;
      const r = await run(Deno.execPath(), [
        "run",
        "-q",
        "-A",
        `${ROOT}/dist/compile.ts`,
        "--target",
        host,
        "--out",
        dir,
      ], { env: { [envName]: hostTrue, DENORT_BIN: "" } });
      assert.equal(r.code, 0, r.stderr);
      const bin = `${dir}/${binaryName(VERSION, host)}`;
      const size = (await Deno.stat(bin)).size;
      assert.ok(size > (await Deno.stat(hostTrue)).size + 100_000, "the program was embedded");
      // Every lazily imported chunk of the (minified) bundle too: the D-Bus reader, libsecret,
      // the verbs, oauth4webapi, jsonc-parser, each known by a string it holds
      // (`--unstable-lazy-dynamic-imports` in deno.json would leave them out: tasks.cli only).
      const embedded = new TextDecoder("latin1").decode(await Deno.readFile(bin));
      for (
        const [module, text] of [
          ["src/store/dbus/secret_read.ts", "dh-ietf1024-sha256-aes128-cbc-pkcs7"],
          ["ffi/linux/libsecret.ts", "libsecret-1.so.0"],
          ["src/cli/doctor.ts", "cached read"],
          ["oauth4webapi", "oauth4webapi/v"],
          ["jsonc-parser (setup claude's editor)", "UnexpectedEndOfComment"],
        ]
      ) {
        assert.ok(embedded.includes(text), `${module} is embedded`);
      }
      assert.deepEqual(
        [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
        [archiveName(VERSION, host), binaryName(VERSION, host), "SHA256SUMS"].sort(),
      );
      assert.match(
        await Deno.readTextFile(`${dir}/SHA256SUMS`),
        new RegExp(`^[0-9a-f]{64}  ${archiveName(VERSION, host).replaceAll(".", "\\.")}\n$`),
      );
    });
  });

  Deno.test("compile: an unreachable dl.deno.land is one line naming the runtime to provide", async () => {
    await withTempDir(async (dir) => {
      const denoDir = await denoDirWithoutRuntimes(dir);
      // a proxy on a closed loopback port: the download fails fast, here and on networked CI
      const r = await run(Deno.execPath(), [
        "run",
        "-q",
        "-A",
        `${ROOT}/dist/compile.ts`,
        "--target",
        "aarch64-apple-darwin",
        "--out",
        `${dir}/out`,
      ], {
        env: {
          DENO_DIR: denoDir,
          HTTPS_PROXY: "http://127.0.0.1:9",
          https_proxy: "http://127.0.0.1:9",
          NO_PROXY: "",
          no_proxy: "",
          DENORT_BIN: "",
          DENORT_BIN_AARCH64_APPLE_DARWIN: "",
        },
      });
      assert.equal(r.code, 1);
      assert.deepEqual(r.stderr.trim().split("\n"), [
        `deno compile needs denort-aarch64-apple-darwin.zip (Deno ${Deno.version.deno}) from dl.deno.land, ` +
        `unreachable here: set DENORT_BIN_AARCH64_APPLE_DARWIN=/path/to/denort, or put the zip in ` +
        `$DENO_DIR/dl/release/v${Deno.version.deno}/`,
      ]);
      assert.equal(which("denort", `${dir}/out`), undefined);
    });
  });
} else {
  console.warn("SKIPPED real deno compile tests: they need a Linux host with /bin/true");
  Deno.test({
    name: "compile: real deno compile [SKIPPED: needs a Linux host]",
    ignore: true,
    fn() {},
  });
}
