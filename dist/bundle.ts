/**
 * `deno task bundle`: `src/main.ts` and everything it imports, as JavaScript, in `dist/bundle/`
 * (`deno bundle --code-splitting`): the program `deno task cli` runs, the tests and the
 * benchmark run, and `deno task compile` puts into the binary. One program everywhere, so what
 * is measured and tested is what ships.
 *
 * Why a bundle (issue 14): from source, Deno loads each of the ~25 TypeScript modules of a
 * cached `token` call through its transpile cache, whose emitted files carry inline source maps
 * three times the size of the code; the same code as a few JavaScript chunks, without comments,
 * loads ~5 ms faster (6.9 against 12.1 ms in process; `deno task bench` has the whole-call
 * figure). Code splitting, not one file: every module the lazily loaded verbs share with the
 * cached path (`errors.ts` and its classes, the early read's state) exists once, so
 * `instanceof AppError` and the exit codes hold across a dynamic import, and a verb loads only
 * its own chunks. npm packages are inlined into the chunks of the verbs that use them, so no
 * chunk `token` loads at start-up holds any (`test/startup_imports_test.ts`).
 *
 * `dist/bundle/SOURCES` records a digest of the inputs (`src/`, `ffi/`, `deno.json`,
 * `deno.lock`; not the tests); {@linkcode staleBundleReason} compares it, so a test run against
 * a bundle older than the source stops with one line instead of testing old code. The tasks
 * that run the bundle (`cli`, `test`, `demo`, `bench`, `test:windows`) build it first.
 *
 * `deno bundle` is marked experimental in Deno 2.9; it fetches esbuild from npm on first use.
 *
 * @module
 */

/** Repository root, no trailing slash. */
export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Where the bundle lives; `main.js` is its entry point. */
export const BUNDLE_DIR = `${ROOT}/dist/bundle`;
/** The entry point, relative to the repository root, as `deno.json`'s tasks name it. */
export const BUNDLE_ENTRY = "dist/bundle/main.js";
const STAMP = "SOURCES";

/**
 * Builds the bundle of `entry` (a path relative to the repository root; `src/main.ts` unless
 * the benchmark bundles one of its probes the same way) into `outDir`, replaced whole; returns
 * the digest it recorded.
 */
export async function buildBundle(outDir = BUNDLE_DIR, entry = "src/main.ts"): Promise<string> {
  const digest = await sourceDigest();
  const parent = outDir.replace(/\/[^/]+$/, "");
  await Deno.mkdir(parent, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: parent, prefix: ".bundle-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "-q",
        "--config",
        `${ROOT}/deno.json`,
        "--frozen",
        "--code-splitting",
        // Minified: the start-up chunks are half the size, ~1 ms less to load (issue 14).
        // Linked source maps keep stack traces pointing at src/ (Deno applies them), and name
        // the modules each chunk holds (test/startup_imports_test.ts reads them).
        "--minify",
        "--sourcemap=linked",
        "--outdir",
        staging,
        entry,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!out.success) {
      const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
      const error = lines.find((l) => l.startsWith("error: ")) ?? lines[0] ?? "";
      throw new Error(`deno bundle failed: ${error.replace(/^error: /, "")}`);
    }
    await Deno.writeTextFile(`${staging}/${STAMP}`, `${digest}\n`);
    // Swapped in whole: a reader never sees a half-written bundle, and no chunk of an older
    // build (their names are content hashes) stays behind.
    const old = `${staging}.old`;
    await Deno.rename(outDir, old).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    await Deno.rename(staging, outDir);
    await Deno.remove(old, { recursive: true }).catch(() => {});
    return digest;
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * Why the bundle in `dir` does not hold the current source (missing, or built from other
 * inputs), as one line naming the fix; `null` when it does.
 */
export async function staleBundleReason(dir = BUNDLE_DIR): Promise<string | null> {
  let recorded: string;
  try {
    recorded = (await Deno.readTextFile(`${dir}/${STAMP}`)).trim();
  } catch {
    return `${dir} has no bundle: run \`deno task bundle\` (the test task does it first)`;
  }
  if (recorded !== await sourceDigest()) {
    return `${dir} was built from other sources than src/ and ffi/ hold now: run \`deno task bundle\``;
  }
  return null;
}

/** SHA-256 over the bundle's inputs: each file's path and contents, in path order. */
export async function sourceDigest(): Promise<string> {
  const files = ["deno.json", "deno.lock"];
  for (const dir of ["src", "ffi"]) await collect(dir, files);
  files.sort();
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const file of files) {
    parts.push(
      encoder.encode(`${file}\0`),
      await Deno.readFile(`${ROOT}/${file}`),
      new Uint8Array(1),
    );
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all)).toHex();
}

async function collect(dir: string, into: string[]): Promise<void> {
  for await (const entry of Deno.readDir(`${ROOT}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) await collect(path, into);
    else if (entry.isFile && !entry.name.endsWith("_test.ts")) into.push(path);
  }
}

if (import.meta.main) {
  try {
    await buildBundle();
  } catch (error) {
    console.error(`bundle: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
