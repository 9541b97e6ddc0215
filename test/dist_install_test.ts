/**
 * `dist/install.sh` against a loopback mirror of the GitHub releases layout, with stand-in
 * archives (a shell script answering `--version` as the "binary") and a fake `uname` that says
 * Linux x86_64 on every host, so the same target is asked for everywhere.
 */
import assert from "node:assert/strict";
import { tarGz } from "../dist/lib/archive.ts";
import { formatSums, sha256Hex } from "../dist/checksums.ts";
import { archiveName } from "../dist/lib/targets.ts";
import {
  type LoopbackServer,
  type Reply,
  ROOT,
  run,
  runOk,
  serve,
  standInBinary,
  testWith,
  which,
  withTempDir,
} from "./fixtures/dist/helpers.ts";

const SCRIPT = `${ROOT}/dist/install.sh`;
const TARGET = "x86_64-unknown-linux-gnu";
const MTIME = new Date("2025-01-01T00:00:00Z");

/** One release on the mirror: files by name. */
type Release = Map<string, Uint8Array<ArrayBuffer>>;

async function release(
  version: string,
  opts: { omitTarget?: boolean; corrupt?: boolean } = {},
): Promise<Release> {
  const files: Release = new Map();
  for (const target of [TARGET, "aarch64-unknown-linux-gnu", "aarch64-apple-darwin"] as const) {
    if (opts.omitTarget && target === TARGET) continue;
    files.set(
      archiveName(version, target),
      await tarGz([
        { name: "agent-runner-auth", data: standInBinary(version), mode: 0o755 },
        { name: "README.md", data: new TextEncoder().encode("# readme\n"), mode: 0o644 },
      ], MTIME),
    );
  }
  const sums = new Map<string, string>();
  for (const [name, data] of files) sums.set(name, await sha256Hex(data));
  if (opts.omitTarget) {
    // the entry is missing from SHA256SUMS, even if someone uploads the file
    files.set(archiveName(version, TARGET), new Uint8Array(10));
  }
  if (opts.corrupt) {
    const name = archiveName(version, TARGET);
    const bytes = files.get(name)!.slice();
    bytes[bytes.length - 30] ^= 0xff;
    files.set(name, bytes);
  }
  files.set("SHA256SUMS", new TextEncoder().encode(formatSums(sums)));
  return files;
}

/** A mirror with `releases` (version → files); `latest` is the last one. */
function mirror(
  releases: Map<string, Release>,
  override?: (path: string) => Reply,
): LoopbackServer {
  const latest = [...releases.keys()].pop()!;
  return serve((path) => {
    const special = override?.(path);
    if (special) return special;
    let m = /^\/latest\/download\/([^/]+)$/.exec(path);
    if (m) return releases.get(latest)!.get(m[1]);
    m = /^\/download\/v([^/]+)\/([^/]+)$/.exec(path);
    if (m) return releases.get(m[1])?.get(m[2]);
    return undefined;
  });
}

interface Sandbox {
  dir: string;
  home: string;
  env: Record<string, string>;
}

/** A throwaway HOME and a PATH whose `uname` reports `os`/`cpu`. */
async function sandbox(dir: string, url: string, os = "Linux", cpu = "x86_64"): Promise<Sandbox> {
  const home = `${dir}/home`;
  const fakebin = `${dir}/fakebin`;
  await Deno.mkdir(home);
  await Deno.mkdir(fakebin);
  await Deno.writeTextFile(
    `${fakebin}/uname`,
    `#!/bin/sh\ncase "$1" in -m) echo "${cpu}" ;; *) echo "${os}" ;; esac\n`,
    { mode: 0o755 },
  );
  return {
    dir,
    home,
    env: {
      HOME: home,
      PATH: `${fakebin}:${Deno.env.get("PATH")}`,
      SHELL: "/bin/bash",
      AGENT_RUNNER_INSTALL_BASE_URL: url,
    },
  };
}

function install(sb: Sandbox, args: string[] = [], shell = "sh", env: Record<string, string> = {}) {
  return run(shell, [SCRIPT, ...args], { env: { ...sb.env, ...env }, cwd: sb.dir });
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

const shells = ["dash", "bash"].filter((s) => which(s));

testWith(
  ["sh", "curl"],
  "install.sh: good checksum installs into ~/.local/bin and runs",
  async () => {
    const server = mirror(new Map([["0.2.0", await release("0.2.0")]]));
    try {
      for (const shell of shells.length ? shells : ["sh"]) {
        await withTempDir(async (dir) => {
          const sb = await sandbox(dir, server.url);
          const r = await install(sb, [], shell);
          assert.equal(r.code, 0, `${shell}: ${r.stderr}`);
          const bin = `${sb.home}/.local/bin/agent-runner-auth`;
          assert.equal((await runOk(bin, ["--version"])).stdout, "agent-runner-auth 0.2.0\n");
          assert.equal((await Deno.stat(bin)).mode! & 0o777, 0o755);
          assert.match(
            r.stderr,
            /installed .*\.local\/bin\/agent-runner-auth \(agent-runner-auth 0\.2\.0\)/,
          );
          // not on PATH: the hint names the directory and the shell's rc file
          assert.match(r.stderr, /not on your PATH/);
          assert.match(r.stderr, /export PATH="\$HOME\/\.local\/bin:\$PATH"' >> ~\/\.bashrc/);
          assert.deepEqual(
            [...Deno.readDirSync(`${sb.home}/.local/bin`)].map((e) => e.name),
            ["agent-runner-auth"],
          );
        });
      }
      // latest: SHA256SUMS from /latest, the archive from its own version's directory
      assert.ok(server.requests.includes("/latest/download/SHA256SUMS"));
      assert.ok(server.requests.includes(`/download/v0.2.0/${archiveName("0.2.0", TARGET)}`));
    } finally {
      await server.close();
    }
  },
);

testWith(["sh", "curl"], "install.sh: no PATH hint when the directory is on PATH", async () => {
  const server = mirror(new Map([["0.2.0", await release("0.2.0")]]));
  try {
    await withTempDir(async (dir) => {
      const sb = await sandbox(dir, server.url);
      const r = await install(sb, [], "sh", {
        PATH: `${sb.home}/.local/bin:${sb.env.PATH}`,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /not on your PATH/);
    });
  } finally {
    await server.close();
  }
});

testWith(
  ["sh", "curl"],
  "install.sh: a checksum mismatch is refused, nothing installed",
  async () => {
    const server = mirror(new Map([["0.2.0", await release("0.2.0", { corrupt: true })]]));
    try {
      await withTempDir(async (dir) => {
        const sb = await sandbox(dir, server.url);
        const r = await install(sb);
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          /checksum mismatch for agent-runner-auth-0\.2\.0-x86_64-unknown-linux-gnu\.tar\.gz/,
        );
        assert.match(r.stderr, /nothing was installed/);
        assert.equal(await exists(`${sb.home}/.local/bin/agent-runner-auth`), false);
      });
    } finally {
      await server.close();
    }
  },
);

testWith(["sh", "curl"], "install.sh: no SHA256SUMS entry for this target is refused", async () => {
  const server = mirror(
    new Map([
      ["0.1.0", await release("0.1.0", { omitTarget: true })],
      ["0.2.0", await release("0.2.0", { omitTarget: true })],
    ]),
  );
  try {
    await withTempDir(async (dir) => {
      const sb = await sandbox(dir, server.url);
      let r = await install(sb, ["--version", "0.1.0"]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /SHA256SUMS of v0\.1\.0 has no entry for agent-runner-auth-0\.1\.0-x86_64-unknown-linux-gnu\.tar\.gz/,
      );
      r = await install(sb);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /latest release's SHA256SUMS has no .*x86_64-unknown-linux-gnu/);
      assert.equal(await exists(`${sb.home}/.local`), false);
      // the archive (present on the server without an entry) was never even fetched
      assert.ok(!server.requests.some((p) => p.endsWith(".tar.gz")));
    });
  } finally {
    await server.close();
  }
});

async function interrupted(tools: string[], pathFor: (sb: Sandbox) => Promise<string>) {
  const rel = await release("0.2.0");
  const name = archiveName("0.2.0", TARGET);
  const data = rel.get(name)!;
  const server = mirror(new Map([["0.2.0", rel]]), (path) => {
    return path.endsWith(name) ? { body: data, cutAfter: data.length >> 1 } : undefined;
  });
  try {
    await withTempDir(async (dir) => {
      const sb = await sandbox(dir, server.url);
      const r = await install(sb, [], "sh", { PATH: await pathFor(sb) });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`download failed \\(${tools[0]} exit \\d+\\): .*${name}`));
      assert.equal(await exists(`${sb.home}/.local/bin/agent-runner-auth`), false);
    });
  } finally {
    await server.close();
  }
}

/**
 * The commands install.sh may use besides curl: a PATH of exactly these (and the fake uname)
 * proves it works with wget and pins what it depends on.
 */
const WGET_TOOLSET = [
  "sh",
  "bash",
  "cat",
  "chmod",
  "cp",
  "grep",
  "gzip",
  "ldd",
  "mkdir",
  "mktemp",
  "mv",
  "rm",
  "sha256sum",
  "tar",
  "tr",
  "wget",
];

async function pathWithoutCurl(sb: Sandbox): Promise<string> {
  const bin = `${sb.dir}/nocurl`;
  await Deno.mkdir(bin);
  for (const tool of WGET_TOOLSET) {
    const real = which(tool);
    if (real) await Deno.symlink(real, `${bin}/${tool}`);
  }
  return `${sb.dir}/fakebin:${bin}`;
}

testWith(["sh", "curl"], "install.sh: an interrupted download (curl) is refused", async () => {
  await interrupted(["curl"], (sb) => Promise.resolve(sb.env.PATH));
});

testWith(
  ["sh", "wget"],
  "install.sh: works with wget alone, and refuses its cut-off download",
  async () => {
    const server = mirror(new Map([["0.2.0", await release("0.2.0")]]));
    try {
      await withTempDir(async (dir) => {
        const sb = await sandbox(dir, server.url);
        const path = await pathWithoutCurl(sb);
        assert.equal(which("curl", path), undefined);
        const r = await install(sb, [], "sh", { PATH: path });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          (await runOk(`${sb.home}/.local/bin/agent-runner-auth`, ["--version"])).stdout,
          "agent-runner-auth 0.2.0\n",
        );
      });
    } finally {
      await server.close();
    }
    await interrupted(["wget"], pathWithoutCurl);
  },
);

testWith(["sh"], "install.sh: unsupported platforms are refused with a pointer", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, string, RegExp][] = [
      ["MINGW64_NT-10.0-22631", "x86_64", /winget install copebit\.AgentRunnerAuth/],
      ["MSYS_NT-10.0", "x86_64", /Windows is not supported by this script/],
      ["FreeBSD", "amd64", /unsupported operating system 'FreeBSD'/],
      ["Linux", "riscv64", /unsupported CPU 'riscv64' on Linux/],
      ["Darwin", "ppc", /unsupported CPU 'ppc' on Darwin/],
    ];
    for (const [i, [os, cpu, want]] of cases.entries()) {
      await Deno.mkdir(`${dir}/${i}`);
      const sb = await sandbox(`${dir}/${i}`, "http://127.0.0.1:9", os, cpu);
      const r = await install(sb);
      assert.equal(r.code, 1, `${os}/${cpu}`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line for ${os}/${cpu}: ${r.stderr}`);
    }
  });
});

testWith(["sh", "curl"], "install.sh: an existing install is upgraded in place", async () => {
  const server = mirror(
    new Map([["0.1.0", await release("0.1.0")], ["0.2.0", await release("0.2.0")]]),
  );
  try {
    await withTempDir(async (dir) => {
      const sb = await sandbox(dir, server.url);
      const bin = `${sb.home}/.local/bin/agent-runner-auth`;
      let r = await install(sb, ["--version", "v0.1.0"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await runOk(bin, ["--version"])).stdout, "agent-runner-auth 0.1.0\n");
      const before = (await Deno.stat(bin)).ino;
      // a process still holding the old file keeps reading the old content
      const held = await Deno.open(bin);

      r = await install(sb);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /upgraded .*: agent-runner-auth 0\.1\.0 -> agent-runner-auth 0\.2\.0/);
      assert.equal((await runOk(bin, ["--version"])).stdout, "agent-runner-auth 0.2.0\n");
      assert.notEqual((await Deno.stat(bin)).ino, before, "replaced by rename, not rewritten");
      const old = new TextDecoder().decode(await new Response(held.readable).arrayBuffer());
      assert.match(old, /agent-runner-auth 0\.1\.0/);
      assert.deepEqual(
        [...Deno.readDirSync(`${sb.home}/.local/bin`)].map((e) => e.name),
        ["agent-runner-auth"],
        "no staging file left behind",
      );
    });
  } finally {
    await server.close();
  }
});

testWith(["sh", "curl"], "install.sh: --prefix DIR installs into DIR/bin", async () => {
  const server = mirror(new Map([["0.2.0", await release("0.2.0")]]));
  try {
    await withTempDir(async (dir) => {
      const sb = await sandbox(dir, server.url);
      const r = await install(sb, ["--prefix", `${dir}/opt/tools`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        (await runOk(`${dir}/opt/tools/bin/agent-runner-auth`, ["--version"])).stdout,
        "agent-runner-auth 0.2.0\n",
      );
      assert.equal(await exists(`${sb.home}/.local`), false);
      assert.match(r.stderr, new RegExp(`${dir}/opt/tools/bin is not on your PATH`));

      // a relative prefix is taken from the current directory; the PATH advice is absolute
      const rel = await install(sb, ["--prefix", "rel/tools"]);
      assert.equal(rel.code, 0, rel.stderr);
      const real = await Deno.realPath(dir);
      assert.ok(await exists(`${dir}/rel/tools/bin/agent-runner-auth`));
      assert.match(rel.stderr, new RegExp(`${real}/rel/tools/bin is not on your PATH`));
      assert.match(rel.stderr, new RegExp(`export PATH="${real}/rel/tools/bin:\\$PATH"`));
      assert.doesNotMatch(rel.stderr, /PATH="rel\//);

      const bad = await install(sb, ["--prefix"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /--prefix needs a directory/);
      const unknown = await install(sb, ["--bogus"]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /unknown option '--bogus'/);
    });
  } finally {
    await server.close();
  }
});

testWith(["sh", "curl"], "install.sh: a missing release is a clear download error", async () => {
  const server = mirror(new Map([["0.2.0", await release("0.2.0")]]));
  try {
    await withTempDir(async (dir) => {
      const sb = await sandbox(dir, server.url);
      const r = await install(sb, ["--version", "9.9.9"]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /download failed \(curl exit 22\): .*\/download\/v9\.9\.9\/SHA256SUMS/,
      );
    });
  } finally {
    await server.close();
  }
});

testWith(
  ["sh", "dash", "shellcheck"],
  "install.sh: POSIX sh syntax, dash, shellcheck clean",
  async () => {
    await runOk("sh", ["-n", SCRIPT]);
    await runOk("dash", ["-n", SCRIPT]);
    await runOk("shellcheck", ["--shell=sh", "--severity=style", SCRIPT]);
  },
);
