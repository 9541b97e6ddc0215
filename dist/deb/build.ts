/**
 * Builds `agent-runner-auth_<version>-<revision>_<arch>.deb` with `dpkg-deb`:
 *
 * - `/usr/bin/agent-runner-auth` (0755), the compiled binary, never stripped (stripping would
 *   cut off the program `deno compile` appended to the runtime);
 * - `/usr/share/doc/agent-runner-auth/copyright` (DEP-5, naming what the binary embeds) and
 *   `changelog.Debian.gz`;
 * - `/usr/share/man/man1/agent-runner-auth.1.gz`, rendered from the CLI's own `--help` (run from
 *   source, so it cannot drift from the binary);
 * - `/usr/share/lintian/overrides/agent-runner-auth` (dist/deb/lintian-overrides: each
 *   override says why);
 * - `Depends: libc6 (>= <newest GLIBC_ symbol version the binary asks for>), libgcc-s1 |
 *   libgcc1, libsecret-1-0` (the runtime links libc and libgcc_s; the Secret Service store
 *   dlopens libsecret), `Recommends: gnome-keyring | pass`;
 * - every file root-owned (`--root-owner-group`), 0644/0755, mtimes at SOURCE_DATE_EPOCH when
 *   set, xz-compressed (readable by every dpkg still in use).
 *
 * The Debian revision (`-1`) keeps the package non-native, which is what `changelog.Debian.gz`
 * means; a pre-release `1.0.0-rc.1` becomes `1.0.0~rc.1-1` so it sorts before `1.0.0-1`.
 *
 * CLI: `deno run -A dist/deb/build.ts --from DIR [--out DIR]` packages
 * `DIR/agent-runner-auth-<version>-{x86_64,aarch64}-unknown-linux-gnu` (what `deno task compile`
 * writes) as amd64 and arm64; or `--binary FILE --arch amd64|arm64` for one. `--version`
 * (default deno.json), `--revision` (default 1), `--lintian` runs lintian on the result.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  DESCRIPTION,
  HOMEPAGE,
  LICENSE,
  MAINTAINER,
  projectVersion,
  PUBLISHER,
  SUMMARY,
} from "../lib/meta.ts";
import { binaryName, COMMAND, TARGETS } from "../lib/targets.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const HERE = `${ROOT}/dist/deb`;

/** Debian architectures we build. */
export type DebArch = "amd64" | "arm64";

/** `0.1.0` + revision 1 → `0.1.0-1`; `1.0.0-rc.1` → `1.0.0~rc.1-1`. */
export function debVersion(version: string, revision = 1): string {
  if (!/^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$/.test(version)) {
    throw new Error(`Not a release version: ${version}`);
  }
  return `${version.replace("-", "~")}-${revision}`;
}

/** `agent-runner-auth_0.1.0-1_amd64.deb` */
export function debFileName(version: string, arch: DebArch, revision = 1): string {
  return `${COMMAND}_${debVersion(version, revision)}_${arch}.deb`;
}

/**
 * The newest `GLIBC_x.y` symbol version named in `binary` (what `libc6 (>= …)` must say), or
 * undefined for a binary that names none (a stand-in script).
 */
export function glibcFloor(binary: Uint8Array): string | undefined {
  // Scan for the version strings of .gnu.version_r; latin1 keeps byte offsets and is fast.
  const text = new TextDecoder("latin1").decode(binary);
  let best: number[] | undefined;
  for (const m of text.matchAll(/GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\0/g)) {
    const v = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
    if (
      !best || v[0] > best[0] ||
      (v[0] === best[0] && (v[1] > best[1] || (v[1] === best[1] && v[2] > best[2])))
    ) {
      best = v;
    }
  }
  return best && (best[2] ? best.join(".") : `${best[0]}.${best[1]}`);
}

/** Wraps `text` for a Debian extended description (a space before each line, `.` for blanks). */
function wrapDescription(text: string, width = 78): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.map((l) => ` ${l}`).join("\n");
}

/** Inputs of {@linkcode buildDeb}. */
export interface DebInput {
  /** The compiled binary (or a stand-in). */
  binary: string;
  arch: DebArch;
  version: string;
  revision?: number;
  outDir: string;
  /** Timestamp of files, changelog entry and copyright year. */
  date: Date;
  /** `--help` text for the man page (default: run the CLI from source). */
  helpText?: string;
}

/** The `DEBIAN/control` file. */
export function controlFile(
  opts: {
    arch: DebArch;
    version: string;
    revision?: number;
    installedSizeKiB: number;
    glibc?: string;
  },
): string {
  return [
    `Package: ${COMMAND}`,
    `Version: ${debVersion(opts.version, opts.revision)}`,
    `Architecture: ${opts.arch}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${opts.installedSizeKiB}`,
    `Depends: libc6 (>= ${opts.glibc ?? "2.27"}), libgcc-s1 | libgcc1, libsecret-1-0`,
    "Recommends: gnome-keyring | pass",
    "Section: utils",
    "Priority: optional",
    `Homepage: ${HOMEPAGE}`,
    `Description: ${SUMMARY}`,
    wrapDescription(DESCRIPTION),
    "",
  ].join("\n");
}

const MIT = `Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.`;

const BSD3 = `Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of
conditions and the following disclaimer in the documentation and/or other materials provided
with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors may be used to
endorse or promote products derived from this software without specific prior written
permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER
IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT
OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.`;

/** DEP-5 license text: continuation lines start with a space, blank lines are ` .`. */
function dep5Text(text: string): string {
  return text.split("\n").map((l) => (l.trim() === "" ? " ." : ` ${l}`)).join("\n");
}

/**
 * `copyright` in the machine-readable format (DEP-5). The binary is `deno compile` output, so
 * besides this project it carries the Deno runtime, V8 and the npm packages in deno.lock; their
 * licences are listed too (the Files patterns name their upstream source trees).
 */
export function copyrightFile(year: number): string {
  const own = LICENSE.spdx ?? LICENSE.name;
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ${COMMAND}
Upstream-Contact: ${MAINTAINER}
Source: ${HOMEPAGE}
Comment: /usr/bin/${COMMAND} is built with deno compile: the Deno runtime (denort, which
 includes V8) with this program and its npm dependencies (oauth4webapi, @panva/hkdf) embedded.

Files: *
Copyright: ${year} ${PUBLISHER}
License: ${own}

Files: deno/*
Copyright: 2018-${year} the Deno authors
License: Expat

Files: deno/v8/*
Copyright: 2006-${year} the V8 project authors
License: BSD-3-clause

Files: npm/oauth4webapi/* npm/@panva/hkdf/*
Copyright: Filip Skokan
License: Expat

License: ${own}
${dep5Text(LICENSE.text)}

License: Expat
${dep5Text(MIT)}

License: BSD-3-clause
${dep5Text(BSD3)}
`;
}

/** RFC 2822 date as Debian changelogs write it. */
function rfc2822(d: Date): string {
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
  ];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${days[d.getUTCDay()]}, ${p(d.getUTCDate())} ${
    months[d.getUTCMonth()]
  } ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** `changelog.Debian` (before gzip). */
export function changelogFile(version: string, revision: number, date: Date): string {
  return `${COMMAND} (${debVersion(version, revision)}) stable; urgency=medium

  * Release ${version}; the release notes are at
    ${HOMEPAGE}/releases/tag/v${version}

 -- ${MAINTAINER}  ${rfc2822(date)}
`;
}

/** roff-escapes one line for a no-fill block. */
function roffLine(line: string): string {
  const escaped = line.replaceAll("\\", "\\e").replaceAll("-", "\\-");
  return /^[.']/.test(escaped) ? `\\&${escaped}` : escaped;
}

/** The man page: summary, description, and the CLI's `--help` verbatim. */
export function manPage(version: string, date: Date, helpText: string): string {
  const help = helpText.trimEnd().split("\n").map(roffLine).join("\n");
  return `.TH AGENT\\-RUNNER\\-AUTH 1 "${
    date.toISOString().slice(0, 10)
  }" "${COMMAND} ${version}" "User Commands"
.SH NAME
${COMMAND} \\- ${SUMMARY.replaceAll("-", "\\-")}
.SH SYNOPSIS
.B ${COMMAND.replaceAll("-", "\\-")}
.I verb
.RI [ flags ]
.SH DESCRIPTION
${DESCRIPTION.replaceAll("-", "\\-").replaceAll("`", "")}
.SH USAGE
.nf
${help}
.fi
.SH FILES
.TP
.I ~/.config/agent\\-runner/config.json
Tenant settings, written by
.BR login .
.SH SEE ALSO
.UR ${HOMEPAGE}
.UE
`;
}

/** The CLI's `--help` text, from source (the binary may be for another CPU). */
export async function cliHelp(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "--config", `${ROOT}/deno.json`, "-P=cli", `${ROOT}/src/main.ts`, "--help"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (out.code !== 0 || !text.includes("Usage:")) {
    throw new Error(`agent-runner-auth --help failed: ${text}`);
  }
  return text;
}

async function gzip9n(data: string): Promise<Uint8Array> {
  const child = new Deno.Command("gzip", { args: ["-9n", "-c"], stdin: "piped", stdout: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(data));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error("gzip failed");
  return out.stdout;
}

async function checked(cmd: string, args: string[], env?: Record<string, string>, cwd?: string) {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** Builds the package; returns its path. */
export async function buildDeb(input: DebInput): Promise<string> {
  const revision = input.revision ?? 1;
  const epoch = Math.floor(input.date.getTime() / 1000);
  const stage = await Deno.makeTempDir({ prefix: "agent-runner-deb-" });
  try {
    const doc = `${stage}/usr/share/doc/${COMMAND}`;
    const dirs = [
      `${stage}/DEBIAN`,
      `${stage}/usr/bin`,
      doc,
      `${stage}/usr/share/man/man1`,
      `${stage}/usr/share/lintian/overrides`,
    ];
    for (const d of dirs) await Deno.mkdir(d, { recursive: true });

    const binary = await Deno.readFile(input.binary);
    const files: [string, Uint8Array, number][] = [
      [`usr/bin/${COMMAND}`, binary, 0o755],
      [
        `usr/share/doc/${COMMAND}/copyright`,
        new TextEncoder().encode(copyrightFile(input.date.getUTCFullYear())),
        0o644,
      ],
      [
        `usr/share/doc/${COMMAND}/changelog.Debian.gz`,
        await gzip9n(changelogFile(input.version, revision, input.date)),
        0o644,
      ],
      [
        `usr/share/man/man1/${COMMAND}.1.gz`,
        await gzip9n(manPage(input.version, input.date, input.helpText ?? await cliHelp())),
        0o644,
      ],
      [
        `usr/share/lintian/overrides/${COMMAND}`,
        await Deno.readFile(`${HERE}/lintian-overrides`),
        0o644,
      ],
    ];
    let sizeKiB = 0;
    for (const [rel, data, mode] of files) {
      await Deno.writeFile(`${stage}/${rel}`, data, { mode });
      await Deno.chmod(`${stage}/${rel}`, mode); // regardless of umask
      sizeKiB += Math.ceil(data.length / 1024);
    }
    const md5 = await checked("md5sum", files.map(([rel]) => rel), undefined, stage);
    await Deno.writeTextFile(`${stage}/DEBIAN/md5sums`, md5);
    await Deno.writeTextFile(
      `${stage}/DEBIAN/control`,
      controlFile({
        arch: input.arch,
        version: input.version,
        revision,
        installedSizeKiB: sizeKiB + 5, // + the directories
        glibc: glibcFloor(binary),
      }),
    );
    // Every directory 0755 and every mtime the same, whatever the umask and the clock.
    const walk = async (dir: string) => {
      await Deno.chmod(dir, 0o755);
      for await (const e of Deno.readDir(dir)) {
        const p = `${dir}/${e.name}`;
        if (e.isDirectory) await walk(p);
        else if (dir.endsWith("/DEBIAN")) await Deno.chmod(p, 0o644);
        await Deno.utime(p, epoch, epoch);
      }
      await Deno.utime(dir, epoch, epoch);
    };
    await walk(stage);

    await Deno.mkdir(input.outDir, { recursive: true });
    const out = `${input.outDir}/${debFileName(input.version, input.arch, revision)}`;
    await checked("dpkg-deb", ["--root-owner-group", "-Zxz", "--build", stage, out], {
      SOURCE_DATE_EPOCH: String(epoch),
    });
    return out;
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

/** `lintian` on `deb` (Debian profile, failing on warnings and errors); returns its report. */
export async function lintian(deb: string): Promise<{ ok: boolean; report: string }> {
  const out = await new Deno.Command("lintian", {
    args: ["--profile", "debian", "--fail-on", "error,warning", "--display-info", "--info", deb],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, report };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      from: { type: "string" },
      binary: { type: "string" },
      arch: { type: "string" },
      version: { type: "string" },
      revision: { type: "string" },
      out: { type: "string" },
      lintian: { type: "boolean" },
    },
    strict: true,
  });
  try {
    const version = values.version ?? projectVersion();
    const revision = Number(values.revision ?? 1);
    const epoch = Deno.env.get("SOURCE_DATE_EPOCH");
    const date = epoch ? new Date(Number(epoch) * 1000) : new Date();
    const outDir = values.out ?? `${ROOT}/dist/out`;
    const jobs: { binary: string; arch: DebArch }[] = [];
    if (values.from) {
      for (const t of TARGETS) {
        if (t.debArch) {
          jobs.push({ binary: `${values.from}/${binaryName(version, t.target)}`, arch: t.debArch });
        }
      }
    } else if (values.binary && (values.arch === "amd64" || values.arch === "arm64")) {
      jobs.push({ binary: values.binary, arch: values.arch });
    } else {
      throw new Error(
        "usage: build.ts (--from DIR | --binary FILE --arch amd64|arm64) [--version X] [--revision N] [--out DIR] [--lintian]",
      );
    }
    const helpText = await cliHelp();
    let failed = false;
    for (const job of jobs) {
      const deb = await buildDeb({ ...job, version, revision, outDir, date, helpText });
      console.error(`built ${deb}`);
      if (values.lintian) {
        const { ok, report } = await lintian(deb);
        console.error(report.trim() || "lintian: no findings");
        failed ||= !ok;
      }
    }
    Deno.exit(failed ? 1 : 0);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
