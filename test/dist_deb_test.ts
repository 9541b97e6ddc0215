/**
 * The Debian package and the signed apt repository, end to end: build `.deb` files around a
 * stand-in binary, check them with dpkg-deb and lintian, publish them with a throwaway GPG key
 * (in a temp GNUPGHOME), serve the repository on a loopback HTTP server, and let the real
 * `apt-get` (with private config, state and cache, never the system's) resolve, download and
 * verify them; a tampered Release, a tampered index and the wrong key must be rejected.
 */
import assert from "node:assert/strict";
import {
  buildDeb,
  changelogFile,
  cliHelp,
  copyrightFile,
  type DebArch,
  debFileName,
  debVersion,
  glibcFloor,
  lintian,
} from "../dist/deb/build.ts";
import { buildRepo } from "../dist/deb/repo.ts";
import { sha256Hex } from "../dist/checksums.ts";
import {
  run,
  runOk,
  serveDir,
  standInBinary,
  testWith,
  withTempDir,
} from "./fixtures/dist/helpers.ts";

const DATE = new Date("2025-01-15T12:00:00Z");

Deno.test("deb: versions, file names and the glibc floor", () => {
  assert.equal(debVersion("0.1.0"), "0.1.0-1");
  assert.equal(debVersion("1.0.0-rc.1", 2), "1.0.0~rc.1-2");
  assert.throws(() => debVersion("latest"), /Not a release version/);
  assert.equal(debFileName("0.1.0", "arm64"), "agent-runner-auth_0.1.0-1_arm64.deb");
  const fakeElf = new TextEncoder().encode(
    "\x7fELF...GLIBC_2.17\0GLIBC_2.27\0GLIBC_2.3.4\0GLIBC_PRIVATE\0",
  );
  assert.equal(glibcFloor(fakeElf), "2.27");
  assert.equal(glibcFloor(standInBinary("0.1.0")), undefined);
});

Deno.test("deb: copyright is DEP-5 and changelog is a Debian changelog entry", () => {
  const c = copyrightFile(2025);
  assert.match(
    c,
    /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/\n/,
  );
  const paragraphs = c.trim().split("\n\n");
  // every License: short name used in a Files paragraph has a stand-alone License paragraph
  const used = new Set(
    paragraphs.filter((p) => p.startsWith("Files:")).map((p) => /^License: (.+)$/m.exec(p)![1]),
  );
  const defined = new Set(
    paragraphs.filter((p) => p.startsWith("License:")).map((p) => /^License: (.+)$/m.exec(p)![1]),
  );
  assert.deepEqual([...used].sort(), [...defined].sort());
  assert.ok(c.split("\n").every((l) => l.length <= 100));
  assert.match(
    changelogFile("0.1.0", 1, DATE),
    /^agent-runner-auth \(0\.1\.0-1\) stable; urgency=medium\n\n {2}\* .*\n[\s\S]*\n -- .+ <.+> {2}Wed, 15 Jan 2025 12:00:00 \+0000\n$/,
  );
});

async function standInDebs(
  dir: string,
  version: string,
  helpText: string,
): Promise<Map<DebArch, string>> {
  const bin = `${dir}/standin-${version}`;
  await Deno.writeFile(bin, standInBinary(version), { mode: 0o755 });
  const debs = new Map<DebArch, string>();
  for (const arch of ["amd64", "arm64"] as const) {
    debs.set(
      arch,
      await buildDeb({ binary: bin, arch, version, outDir: `${dir}/debs`, date: DATE, helpText }),
    );
  }
  return debs;
}

let help: string | undefined;
async function helpText(): Promise<string> {
  return help ??= await cliHelp();
}

testWith(
  ["dpkg-deb", "md5sum", "gzip"],
  "deb: dpkg-deb builds the package: layout, modes, owners, fields",
  async () => {
    await withTempDir(async (dir) => {
      const debs = await standInDebs(dir, "0.1.0", await helpText());
      const deb = debs.get("amd64")!;
      assert.ok(deb.endsWith("/agent-runner-auth_0.1.0-1_amd64.deb"));

      const field = async (name: string) =>
        (await runOk("dpkg-deb", ["-f", deb, name])).stdout.trim();
      assert.equal(await field("Package"), "agent-runner-auth");
      assert.equal(await field("Version"), "0.1.0-1");
      assert.equal(await field("Architecture"), "amd64");
      assert.equal(
        (await runOk("dpkg-deb", ["-f", debs.get("arm64")!, "Architecture"])).stdout.trim(),
        "arm64",
      );
      assert.match(await field("Depends"), /(^|, )libsecret-1-0(,|$)/);
      assert.match(await field("Depends"), /^libc6 \(>= 2\.\d+\)/);
      assert.equal(await field("Recommends"), "gnome-keyring | pass");
      assert.match(await field("Maintainer"), /^.+ <.+@.+>$/);

      const listing = (await runOk("dpkg-deb", ["-c", deb], { env: { TZ: "UTC" } })).stdout.trim()
        .split("\n")
        .map((l) => l.split(/\s+/));
      const entries = new Map(listing.map((r) => [r.at(-1)!, r]));
      assert.ok(listing.every((r) => r[1] === "root/root"), "every file root:root");
      assert.ok(listing.every((r) => r[3] === "2025-01-15"), "every mtime from the build date");
      assert.deepEqual(entries.get("./usr/bin/agent-runner-auth")?.[0], "-rwxr-xr-x");
      for (
        const f of [
          "./usr/share/doc/agent-runner-auth/copyright",
          "./usr/share/doc/agent-runner-auth/changelog.Debian.gz",
          "./usr/share/man/man1/agent-runner-auth.1.gz",
          "./usr/share/lintian/overrides/agent-runner-auth",
        ]
      ) {
        assert.equal(entries.get(f)?.[0], "-rw-r--r--", f);
      }
      assert.ok(listing.filter((r) => r[0].startsWith("d")).every((r) => r[0] === "drwxr-xr-x"));

      // unpacked: the binary runs, md5sums match, the man page carries the CLI's --help
      await runOk("dpkg-deb", ["-x", deb, `${dir}/root`]);
      await runOk("dpkg-deb", ["-e", deb, `${dir}/control`]);
      assert.equal(
        (await runOk(`${dir}/root/usr/bin/agent-runner-auth`, ["--version"])).stdout,
        "agent-runner-auth 0.1.0\n",
      );
      await runOk("md5sum", ["-c", "--strict", `${dir}/control/md5sums`], { cwd: `${dir}/root` });
      const man =
        (await runOk("gzip", ["-dc", `${dir}/root/usr/share/man/man1/agent-runner-auth.1.gz`]))
          .stdout;
      assert.match(man, /^\.TH AGENT\\-RUNNER\\-AUTH 1 "2025-01-15" "agent-runner-auth 0\.1\.0"/);
      assert.match(man, /token +Print a valid access token/);

      // same inputs, same bytes
      const again = await buildDeb({
        binary: `${dir}/standin-0.1.0`,
        arch: "amd64",
        version: "0.1.0",
        outDir: `${dir}/again`,
        date: DATE,
        helpText: await helpText(),
      });
      assert.equal(
        await sha256Hex(await Deno.readFile(again)),
        await sha256Hex(await Deno.readFile(deb)),
      );
    });
  },
);

testWith(
  ["dpkg-deb", "lintian"],
  "deb: lintian finds no error or warning (overrides are justified)",
  async () => {
    await withTempDir(async (dir) => {
      const debs = await standInDebs(dir, "0.1.0", await helpText());
      const { ok, report } = await lintian(debs.get("amd64")!);
      assert.ok(ok, report);
      // The only tags left are overrides kept for the real ELF binary (see dist/deb/lintian-overrides).
      const tags = report.split("\n").filter((l) => /^[EWIPX]: /.test(l));
      assert.ok(
        tags.every((l) => /^I: agent-runner-auth: unused-override /.test(l)),
        tags.join("\n"),
      );
    });
  },
);

/** A throwaway signing key in `home`; returns its fingerprint. */
async function throwawayKey(home: string, name: string): Promise<string> {
  await Deno.mkdir(home, { mode: 0o700 });
  const env = { GNUPGHOME: home };
  await runOk("gpg", [
    "--batch",
    "--passphrase",
    "",
    "--quick-gen-key",
    `${name} <test@example.invalid>`,
    "ed25519",
    "sign",
    "never",
  ], { env });
  const colons = (await runOk("gpg", ["--batch", "--with-colons", "--list-keys"], { env })).stdout;
  return /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1];
}

/** apt-get with every path private to `dir`: nothing read from or written to /etc/apt or /var. */
class PrivateApt {
  readonly conf: string;
  constructor(readonly dir: string) {
    this.conf = `${dir}/apt.conf`;
  }

  async init(sourcesLine: string): Promise<void> {
    const d = this.dir;
    for (
      const sub of ["state/lists/partial", "cache/archives/partial", "empty", "log", "download"]
    ) {
      await Deno.mkdir(`${d}/${sub}`, { recursive: true });
    }
    await Deno.writeTextFile(`${d}/state/status`, "");
    await Deno.writeTextFile(`${d}/sources.list`, `${sourcesLine}\n`);
    const root = Deno.uid() === 0;
    await Deno.writeTextFile(
      this.conf,
      `Dir::State "${d}/state";
Dir::State::status "${d}/state/status";
Dir::Cache "${d}/cache";
Dir::Log "${d}/log";
Dir::Etc::SourceList "${d}/sources.list";
Dir::Etc::SourceParts "${d}/empty";
Dir::Etc::Trusted "${d}/empty/none.gpg";
Dir::Etc::TrustedParts "${d}/empty";
Dir::Etc::Preferences "${d}/empty/none";
Dir::Etc::PreferencesParts "${d}/empty";
Dir::Etc::Parts "${d}/empty";
Dir::Etc::main "${d}/empty/none";
Debug::NoLocking "true";
${root ? 'APT::Sandbox::User "root";\n' : ""}APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; };
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Timeout "10";
Acquire::http::Proxy "DIRECT";
Acquire::AllowInsecureRepositories "false";
Acquire::AllowDowngradeToInsecureRepositories "false";
APT::Get::AllowUnauthenticated "false";
`,
    );
  }

  /** apt-get with the private config (APT_CONFIG is read before anything under /etc/apt). */
  run(args: string[]) {
    return run("apt-get", ["-q", ...args], {
      env: { APT_CONFIG: this.conf, LC_ALL: "C" },
      cwd: `${this.dir}/download`,
    });
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await runOk("cp", ["-a", from, to]);
}

testWith(
  ["dpkg-deb", "apt-ftparchive", "apt-get", "gpg", "gpgv", "gpgconf"],
  "apt repo: apt-get resolves, downloads and verifies; tampering and the wrong key are rejected",
  async () => {
    await withTempDir(async (dir) => {
      const gnupgHome = `${dir}/gnupg`;
      const otherHome = `${dir}/gnupg-other`;
      const servers: { close(): Promise<void> }[] = [];
      try {
        const key = await throwawayKey(gnupgHome, "agent-runner-auth test archive");
        const debs = await standInDebs(dir, "0.1.0", await helpText());
        const repo = `${dir}/repo`;
        await buildRepo({ repo, key, debs: [...debs.values()], gnupgHome });
        for (
          const f of [
            "dists/stable/Release",
            "dists/stable/InRelease",
            "dists/stable/Release.gpg",
            "dists/stable/main/binary-amd64/Packages.gz",
            "dists/stable/main/binary-arm64/Packages.gz",
            "pool/main/a/agent-runner-auth/agent-runner-auth_0.1.0-1_amd64.deb",
            "agent-runner-auth.gpg",
          ]
        ) {
          await Deno.stat(`${repo}/${f}`);
        }
        const release = await Deno.readTextFile(`${repo}/dists/stable/Release`);
        assert.match(release, /^Suite: stable$/m);
        assert.match(release, /^Components: main$/m);
        assert.match(release, /^Architectures: amd64 arm64$/m);
        assert.match(
          release,
          /^SHA256:\n( [0-9a-f]{64} +\d+ main\/binary-(amd64|arm64)\/Packages(\.gz)?\n){4}/m,
        );
        assert.doesNotMatch(release, /^MD5Sum:/m);

        const serveRepo = (root: string) => {
          const s = serveDir(root);
          servers.push(s);
          return s;
        };
        const good = serveRepo(repo);
        const keyring = `${repo}/agent-runner-auth.gpg`;

        // 1. the real thing: update verifies InRelease against signed-by, download fetches both arches
        const apt = new PrivateApt(`${dir}/apt-good`);
        await apt.init(`deb [signed-by=${keyring}] ${good.url}/ stable main`);
        let r = await apt.run(["update"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.doesNotMatch(r.stdout + r.stderr, /^(W|E):/m, r.stdout + r.stderr);
        assert.ok(good.requests.includes("/dists/stable/InRelease"));
        r = await apt.run(["download", "agent-runner-auth", "agent-runner-auth:arm64"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        for (const [arch, built] of debs) {
          const got = `${apt.dir}/download/agent-runner-auth_0.1.0-1_${arch}.deb`;
          assert.equal(
            await sha256Hex(await Deno.readFile(got)),
            await sha256Hex(await Deno.readFile(built)),
          );
        }
        const policy = await run("apt-cache", ["policy", "agent-runner-auth"], {
          env: { APT_CONFIG: apt.conf },
        });
        assert.match(policy.stdout, /Candidate: 0\.1\.0-1/);

        // 2. a second release is added to the same pool; apt sees the upgrade, the old one stays
        const debs2 = await standInDebs(dir, "0.2.0", await helpText());
        await buildRepo({ repo, key, debs: [...debs2.values()], gnupgHome });
        r = await apt.run(["update"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const policy2 = await run("apt-cache", ["policy", "agent-runner-auth"], {
          env: { APT_CONFIG: apt.conf },
        });
        assert.match(policy2.stdout, /Candidate: 0\.2\.0-1/);
        assert.match(policy2.stdout, /0\.1\.0-1 500/);
        // republishing a version with other bytes is refused (apt caches by hash)
        const other = await buildDeb({
          binary: `${dir}/standin-0.1.0`,
          arch: "amd64",
          version: "0.1.0",
          outDir: `${dir}/other`,
          date: new Date("2025-02-01T00:00:00Z"),
          helpText: await helpText(),
        });
        await assert.rejects(
          buildRepo({ repo, key, debs: [other], gnupgHome }),
          /bump the Debian revision/,
        );

        // 3. a tampered Release (and InRelease) fails the signature check
        const tampered = `${dir}/repo-tampered`;
        await copyTree(repo, tampered);
        for (const f of ["InRelease", "Release"]) {
          const p = `${tampered}/dists/stable/${f}`;
          await Deno.writeTextFile(
            p,
            (await Deno.readTextFile(p)).replace("Label: agent-runner-auth", "Label: evil"),
          );
        }
        const bad = new PrivateApt(`${dir}/apt-tampered`);
        await bad.init(`deb [signed-by=${keyring}] ${serveRepo(tampered).url}/ stable main`);
        r = await bad.run(["update"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /BADSIG/);
        assert.match(r.stdout + r.stderr, /is not signed/);
        r = await bad.run(["download", "agent-runner-auth"]);
        assert.notEqual(
          r.code,
          0,
          "nothing to download from a repository that failed verification",
        );
        assert.match(r.stdout + r.stderr, /Unable to locate package agent-runner-auth/);

        // 4. an index swapped after signing fails its Release checksum
        const swapped = `${dir}/repo-swapped`;
        await copyTree(repo, swapped);
        const idx = `${swapped}/dists/stable/main/binary-amd64/Packages`;
        const evil = (await Deno.readTextFile(idx)).replaceAll(
          "Recommends: gnome-keyring | pass",
          "Recommends: evil",
        );
        await Deno.writeTextFile(idx, evil);
        await runOk("sh", ["-c", `gzip -9n -c "${idx}" > "${idx}.gz"`]);
        const swap = new PrivateApt(`${dir}/apt-swapped`);
        await swap.init(`deb [signed-by=${keyring}] ${serveRepo(swapped).url}/ stable main`);
        r = await swap.run(["update"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /Hash Sum mismatch|File has unexpected size/);

        // 5. signed, but by a key the source does not trust
        await throwawayKey(otherHome, "someone else");
        const otherKeyring = `${dir}/other.gpg`;
        await runOk("gpg", ["--batch", "--export", "-o", otherKeyring], {
          env: { GNUPGHOME: otherHome },
        });
        assert.ok((await Deno.stat(otherKeyring)).size > 0);
        const stranger = new PrivateApt(`${dir}/apt-stranger`);
        await stranger.init(`deb [signed-by=${otherKeyring}] ${good.url}/ stable main`);
        r = await stranger.run(["update"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /NO_PUBKEY|not signed/);
      } finally {
        for (const s of servers) await s.close();
        for (const home of [gnupgHome, otherHome]) {
          await run("gpgconf", ["--kill", "all"], { env: { GNUPGHOME: home } }).catch(() => {});
        }
      }
    });
  },
);

testWith(
  ["gpg", "gpgconf", "sh"],
  "apt repo: import_key.sh imports APT_GPG_KEY and prints its fingerprint",
  async () => {
    await withTempDir(async (dir) => {
      const homes = [`${dir}/src`, `${dir}/ci`];
      try {
        const fpr = await throwawayKey(homes[0], "release key");
        const armored = (await runOk("gpg", ["--batch", "--armor", "--export-secret-keys", fpr], {
          env: { GNUPGHOME: homes[0] },
        })).stdout;
        const script = new URL("../dist/deb/import_key.sh", import.meta.url).pathname;
        const r = await runOk("sh", [script], {
          env: { GNUPGHOME: homes[1], APT_GPG_KEY: armored },
        });
        assert.equal(r.stdout, `${fpr}\n`);
        const bad = await run("sh", [script], {
          env: { GNUPGHOME: `${dir}/bad`, APT_GPG_KEY: "not a key" },
        });
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /not an importable OpenPGP secret key/);
      } finally {
        for (const home of [...homes, `${dir}/bad`]) {
          await run("gpgconf", ["--kill", "all"], { env: { GNUPGHOME: home } }).catch(() => {});
        }
      }
    });
  },
);
