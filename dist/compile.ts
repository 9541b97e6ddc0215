/**
 * `deno task compile [--target T ...] [--out DIR] [--no-package] [--prebuilt DIR]`
 *
 * One `deno compile` per release target of the bundle of `src/` (`dist/bundle.ts`, built
 * first into a temporary directory: the program `deno task cli` and the tests run) with the
 * `cli` permission set from `deno.json` (`-P=cli`, the same list `deno task cli` runs with),
 * `--frozen`, the version from `deno.json`; output
 * `dist/out/agent-runner-auth-<version>-<target>[.exe]`. Then the archives (`.tar.gz` per
 * Linux/macOS target holding `agent-runner-auth`, README.md and LICENSE when there is one; `.zip`
 * for Windows holding `agent-runner-auth.exe`) and `SHA256SUMS` over them. Type-checking runs once, up front; each compile then hits the check cache.
 *
 * `deno compile` always injects the program into `denort`, Deno's runtime, which it downloads
 * per target from dl.deno.land (research deno-ffi.md §5.2). Where that host is unreachable:
 * - `DENORT_BIN_<TARGET>` (e.g. `DENORT_BIN_AARCH64_APPLE_DARWIN`) gives the runtime for one
 *   target;
 * - `DENORT_BIN` gives it for the host target only: Deno itself would inject it into every
 *   target, producing e.g. a "macOS" binary built on a Linux runtime, so this script unsets it
 *   for the others;
 * - a `denort-<target>.zip` cached in `$DENO_DIR/dl/release/v<deno>/` also works (Deno's own
 *   lookup).
 * A given runtime is checked against the target's executable format and CPU before use, and the
 * full `deno` binary is refused (it is not a runtime: §5.2). When the runtime is missing the
 * script prints one line saying what it needs and exits 1.
 *
 * `--prebuilt DIR` skips compiling and packages `DIR/agent-runner-auth-<version>-<target>[.exe]`
 * instead (the release workflow uses it after signing the macOS binaries; the tests use it with
 * stand-in executables). `--no-package` compiles only.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type ArchiveEntry, tarGz, zip } from "./lib/archive.ts";
import { writeSha256Sums } from "./checksums.ts";
import { buildBundle } from "./bundle.ts";
import { projectVersion } from "./lib/meta.ts";
import {
  archivedBinaryName,
  archiveName,
  binaryName,
  denortEnvName,
  hostTarget,
  type Target,
  targetInfo,
  TARGETS,
} from "./lib/targets.ts";

/** Repository root, no trailing slash. */
export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A failure reported as exactly one stderr line. */
export class BuildError extends Error {}

// ---------------------------------------------------------------------------------------------
// The runtime (denort) for each target

/** Where a target's runtime comes from: an explicit file, or Deno's own lookup/download. */
export interface RuntimeChoice {
  path?: string;
  /** The variable that named it, for messages. */
  from?: string;
}

/** Picks the runtime for `target` from the environment (see the module doc). */
export function chooseRuntime(
  target: Target,
  env: Record<string, string | undefined>,
  host: Target | undefined = hostTarget(),
): RuntimeChoice {
  const perTarget = denortEnvName(target);
  if (env[perTarget]) return { path: env[perTarget], from: perTarget };
  if (target === host && env.DENORT_BIN) return { path: env.DENORT_BIN, from: "DENORT_BIN" };
  return {};
}

const ELF_MACHINE = { x86_64: 0x3e, aarch64: 0xb7 } as const;
const MACHO_CPU = { x86_64: 0x01000007, aarch64: 0x0100000c } as const;
const PE_MACHINE = { x86_64: 0x8664, aarch64: 0xaa64 } as const;

/**
 * What executable `head` (the first bytes of a file) is, e.g. `elf/x86_64`, `macho/aarch64`,
 * `pe/x86_64`, or `undefined` when it is none we know.
 */
export function executableKind(head: Uint8Array): string | undefined {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const archOf = (table: Record<string, number>, value: number) =>
    Object.entries(table).find(([, n]) => n === value)?.[0] ?? `unknown(0x${value.toString(16)})`;
  if (head.length >= 20 && v.getUint32(0) === 0x7f454c46) {
    if (head[4] !== 2 || head[5] !== 1) return "elf/not-64-bit-little-endian";
    return `elf/${archOf(ELF_MACHINE, v.getUint16(18, true))}`;
  }
  if (head.length >= 8 && v.getUint32(0, true) === 0xfeedfacf) {
    return `macho/${archOf(MACHO_CPU, v.getUint32(4, true))}`;
  }
  if (head.length >= 8 && v.getUint32(0) === 0xcafebabe) return "macho/universal";
  if (head.length >= 0x40 && head[0] === 0x4d && head[1] === 0x5a) {
    const pe = v.getUint32(0x3c, true);
    if (pe + 6 <= head.length && v.getUint32(pe) === 0x50450000) {
      return `pe/${archOf(PE_MACHINE, v.getUint16(pe + 4, true))}`;
    }
  }
  return undefined;
}

/** Throws a one-line {@linkcode BuildError} unless `choice.path` can serve as `target`'s runtime. */
export async function checkRuntime(target: Target, choice: RuntimeChoice): Promise<void> {
  if (!choice.path) return;
  const info = targetInfo(target);
  let real: string;
  try {
    real = await Deno.realPath(choice.path);
  } catch {
    throw new BuildError(`${choice.from}=${choice.path}: no such file (the denort for ${target})`);
  }
  if (real === await Deno.realPath(Deno.execPath())) {
    throw new BuildError(
      `${choice.from}=${choice.path} is the deno CLI itself, not denort: a binary built on it ` +
        `runs as plain deno; use denort-${target}.zip from Deno's releases`,
    );
  }
  const file = await Deno.open(real);
  const head = new Uint8Array(65536);
  const n = (await file.read(head)) ?? 0;
  file.close();
  const kind = executableKind(head.subarray(0, n));
  const want = `${info.format}/${info.arch}`;
  if (kind !== want) {
    throw new BuildError(
      `${choice.from}=${choice.path} is ${kind ?? "not an executable"}, but ${target} needs ` +
        `${want} (denort-${target}.zip)`,
    );
  }
}

/** Deno's failure to fetch the runtime, recognised in `deno compile`'s stderr. */
export function isMissingRuntime(stderr: string): boolean {
  return /denort-[a-z0-9_-]+\.zip/.test(stderr) || /dl\.deno\.land/.test(stderr);
}

/** The one line printed when `target`'s runtime cannot be had. */
export function missingRuntimeMessage(target: Target): string {
  const ver = Deno.version.deno;
  return `deno compile needs denort-${target}.zip (Deno ${ver}) from dl.deno.land, ` +
    `unreachable here: set ${denortEnvName(target)}=/path/to/denort` +
    (target === hostTarget() ? " (or DENORT_BIN)" : "") +
    `, or put the zip in $DENO_DIR/dl/release/v${ver}/`;
}

// ---------------------------------------------------------------------------------------------
// Compiling

async function run(args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    clearEnv: env !== undefined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** `deno check` of the entry point, once, before any compile. */
export async function typeCheck(): Promise<void> {
  const r = await run(["check", "-q", "--frozen", "--config", `${ROOT}/deno.json`, "src/main.ts"]);
  if (r.code !== 0) {
    await Deno.stderr.write(new TextEncoder().encode(r.stderr + r.stdout));
    throw new BuildError("deno check src/main.ts failed: not compiling");
  }
}

/**
 * V8 flags baked into the binary, the same `deno task cli` passes (a test keeps them equal):
 * - a 2 MiB young generation from the start, so a cached `token` (about 1 MiB of allocations
 *   before it prints) ends before its first garbage collection instead of pausing for a
 *   scavenge and waking V8's helper threads (issue 14);
 * - `--single-threaded`: no V8 helper threads (concurrent compilers, parallel GC). A `token`
 *   call is ~20 ms of cold code on one thread while the keyring and the bus daemon answer it on
 *   the machine's other cores; V8's background work only competes with them. Measured on the
 *   2-core machine, 10 alternating blocks of 10 cached calls: −1.8 ms wall (median and
 *   minimum), −2.8 ms CPU. Deno's own threads (I/O, Web Crypto) are not V8's and stay.
 */
export const V8_FLAGS = "--min-semi-space-size=2,--single-threaded";

/**
 * The `deno compile` arguments for one target (exported so the test can pin them). `entry` is
 * the bundle's `main.js` ({@linkcode main} builds it): the program `deno task cli`, the tests
 * and the benchmark run.
 */
export function compileArgs(target: Target, output: string, entry: string): string[] {
  return [
    "compile",
    "-q", // also hides "Permissions in the config file is an experimental feature"
    "--config",
    `${ROOT}/deno.json`,
    "-P=cli", // the binary's permissions: the `cli` set in deno.json, exactly what `deno task cli` gets
    `--v8-flags=${V8_FLAGS}`,
    "--frozen",
    // The code cache and any origin-bound storage are keyed on the app name, which otherwise
    // defaults to the output file name with its version and target in it.
    "--app-name",
    "agent-runner-auth",
    "--target",
    target,
    "--output",
    output,
    entry,
  ];
}

/** Compiles `target` into `outDir`; returns the binary's path. */
export async function compileTarget(
  target: Target,
  version: string,
  outDir: string,
  entry: string,
): Promise<string> {
  const env = Deno.env.toObject();
  const choice = chooseRuntime(target, env);
  await checkRuntime(target, choice);
  const childEnv: Record<string, string> = { NO_COLOR: "1" };
  for (const [k, v] of Object.entries(env)) {
    if (k !== "DENORT_BIN" && !k.startsWith("DENORT_BIN_")) childEnv[k] = v;
  }
  if (choice.path) childEnv.DENORT_BIN = await Deno.realPath(choice.path);
  const output = `${outDir}/${binaryName(version, target)}`;
  const r = await run(compileArgs(target, output, entry), childEnv);
  if (r.code !== 0) {
    if (!choice.path && isMissingRuntime(r.stderr)) {
      throw new BuildError(missingRuntimeMessage(target));
    }
    await Deno.stderr.write(new TextEncoder().encode(r.stderr));
    throw new BuildError(`deno compile failed for ${target}`);
  }
  return output;
}

// ---------------------------------------------------------------------------------------------
// Packaging

/** Inputs of {@linkcode packageRelease}. */
export interface PackageOptions {
  version: string;
  outDir: string;
  /** Target → path of its compiled (or stand-in) binary. */
  binaries: Map<Target, string>;
  /** Files added beside the binary in every archive (README, LICENSE), by base name. */
  docs: string[];
  /** Timestamp of every archive entry (SOURCE_DATE_EPOCH when set: reproducible archives). */
  mtime: Date;
}

/** Writes one archive per target plus `SHA256SUMS` over them; returns the archive names. */
export async function packageRelease(opts: PackageOptions): Promise<string[]> {
  await Deno.mkdir(opts.outDir, { recursive: true });
  const docs: ArchiveEntry[] = [];
  for (const path of opts.docs) {
    docs.push({ name: path.split("/").pop()!, data: await Deno.readFile(path), mode: 0o644 });
  }
  const names: string[] = [];
  for (const [target, path] of opts.binaries) {
    const entries = [
      { name: archivedBinaryName(target), data: await Deno.readFile(path), mode: 0o755 },
      ...docs,
    ];
    const name = archiveName(opts.version, target);
    const bytes = targetInfo(target).os === "windows"
      ? await zip(entries, opts.mtime)
      : await tarGz(entries, opts.mtime);
    await Deno.writeFile(`${opts.outDir}/${name}`, bytes);
    names.push(name);
  }
  await writeSha256Sums(opts.outDir, names);
  return names;
}

/** README.md and LICENSE (or LICENSE.md/.txt), those that exist in the repository root. */
export async function docFiles(root = ROOT): Promise<string[]> {
  const found: string[] = [];
  for (const name of ["README.md", "LICENSE", "LICENSE.md", "LICENSE.txt"]) {
    try {
      if ((await Deno.stat(`${root}/${name}`)).isFile) found.push(`${root}/${name}`);
    } catch {
      // absent: not packaged
    }
  }
  return found;
}

/** SOURCE_DATE_EPOCH (seconds) when set, else now. */
export function buildTime(env = Deno.env.toObject()): Date {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch === undefined || epoch === "") return new Date();
  if (!/^\d+$/.test(epoch)) throw new BuildError(`SOURCE_DATE_EPOCH is not a number: ${epoch}`);
  return new Date(Number(epoch) * 1000);
}

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: deno task compile [--target T ...] [--out DIR] [--no-package] [--prebuilt DIR]
  --target T      one of ${TARGETS.map((t) => t.target).join(", ")} (repeatable; default all)
  --out DIR       output directory (default dist/out)
  --no-package    compile only: no archives, no SHA256SUMS
  --prebuilt DIR  do not compile: package DIR/agent-runner-auth-<version>-<target>[.exe]
env: DENORT_BIN_<TARGET> (e.g. DENORT_BIN_X86_64_APPLE_DARWIN) = denort for that target;
     DENORT_BIN = denort for the host target; SOURCE_DATE_EPOCH = archive timestamps`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string", multiple: true },
      out: { type: "string" },
      prebuilt: { type: "string" },
      "no-package": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.prebuilt && values["no-package"]) {
    throw new BuildError("--prebuilt and --no-package together do nothing");
  }
  const targets = (values.target ?? TARGETS.map((t) => t.target)).map((t) => targetInfo(t).target);
  const version = projectVersion();
  const outDir = values.out ?? `${ROOT}/dist/out`;
  await Deno.mkdir(outDir, { recursive: true });

  const binaries = new Map<Target, string>();
  if (values.prebuilt) {
    for (const target of targets) {
      const path = `${values.prebuilt}/${binaryName(version, target)}`;
      try {
        await Deno.stat(path);
      } catch {
        throw new BuildError(`--prebuilt: ${path} is missing (version ${version} from deno.json)`);
      }
      binaries.set(target, path);
    }
  } else {
    await typeCheck();
    // A private bundle, not dist/bundle/ (which a test run may be using), from the same source.
    const bundleDir = await Deno.makeTempDir({ prefix: "agent-runner-bundle-" });
    try {
      await buildBundle(`${bundleDir}/bundle`).catch((e) => {
        throw new BuildError(e instanceof Error ? e.message : String(e));
      });
      for (const target of targets) {
        const path = await compileTarget(target, version, outDir, `${bundleDir}/bundle/main.js`);
        console.error(`compiled ${path}`);
        binaries.set(target, path);
      }
    } finally {
      await Deno.remove(bundleDir, { recursive: true }).catch(() => {});
    }
  }
  if (values["no-package"]) return 0;
  const archives = await packageRelease({
    version,
    outDir,
    binaries,
    docs: await docFiles(),
    mtime: buildTime(),
  });
  for (const a of archives) console.error(`packaged ${outDir}/${a}`);
  console.error(`wrote ${outDir}/SHA256SUMS`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    const usage = error instanceof TypeError && "code" in error &&
      String(error.code).startsWith("ERR_PARSE_ARGS");
    console.error(error instanceof Error ? error.message : String(error));
    if (usage) console.error(USAGE);
    Deno.exit(usage ? 2 : 1);
  }
}
