/**
 * `deno task bundle`: `src/main.ts` and everything it imports, as JavaScript, in `dist/bundle/`
 * (`deno bundle --code-splitting`): the program `deno task cli` runs, the tests and the
 * benchmark run, and `deno task compile` puts into the binary. One program everywhere, so what
 * is measured and tested is what ships.
 *
 * Why a bundle (issue 14): from source, Deno loads each of the ~25 TypeScript modules of a
 * cached `token` call through its transpile cache, whose emitted files carry inline source maps
 * three times the size of the code; the same code as JavaScript chunks, without comments, loads
 * ~5 ms faster (6.9 against 12.1 ms in process), and minified, with the start-up modules in one
 * chunk ({@linkcode stageSources}), in ~4.4 ms (`deno task bench` has the whole-call figures).
 * Code splitting, not one file: every module the lazily loaded verbs share with the
 * cached path (`errors.ts` and its classes, the early read's state) exists once, so
 * `instanceof AppError` and the exit codes hold across a dynamic import, and a verb loads only
 * its own chunks. npm packages are inlined into the chunks of the verbs that use them, so no
 * chunk `token` loads at start-up holds any (`test/startup_imports_test.ts`).
 *
 * `dist/bundle/SOURCES` records a digest of the inputs (`src/`, `ffi/`, `deno.json`,
 * `deno.lock` and this file; not the tests); {@linkcode staleBundleReason} compares it, so a test run against
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
  const tree = await Deno.makeTempDir({ dir: parent, prefix: ".bundle-src-" });
  try {
    await stageSources(tree, entry);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "-q",
        "--config",
        `${tree}/deno.json`,
        "--frozen",
        "--code-splitting",
        // Minified: the start-up chunk is half the size, ~1 ms less to load (issue 14).
        // Linked source maps keep stack traces pointing at src/ (Deno applies them), and name
        // the modules each chunk holds (test/startup_imports_test.ts reads them).
        "--minify",
        "--sourcemap=linked",
        "--outdir",
        staging,
        entry,
      ],
      cwd: tree,
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
    await pointMapsAtSources(staging, tree);
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
  } finally {
    await Deno.remove(tree, { recursive: true }).catch(() => {});
  }
}

/** The generated module that gathers the start-up modules (see {@linkcode stageSources}). */
const STARTUP = "bundle_startup.ts";

/**
 * Copies what `deno bundle` reads into `tree` and adds one line to the copies, so the modules
 * `src/main.ts` loads at start-up land in ONE chunk instead of ~20.
 *
 * esbuild puts a module in the chunk of the set of entry points that reach it, and every
 * `import()` target is an entry point: the ~25 start-up modules, each shared with a different
 * set of lazily loaded verbs, came out as 19 chunks, and loading 20 files cost ~2.7 ms more
 * than loading their code as two (10 alternating blocks of 10 cached calls: 78.7 → 76.0 ms).
 * So the copy of every `import()` target imports a generated module that imports every
 * start-up module: each then has the same set (all entry points) and they share one chunk.
 * Nothing changes at run time: when a lazy chunk loads, that chunk is already loaded and
 * evaluated (`main.js` imports it statically), and the line sits after the module's own code,
 * so the source maps' line numbers still match `src/` ({@linkcode pointMapsAtSources}).
 */
async function stageSources(tree: string, entry: string): Promise<void> {
  for (const top of new Set(["src", "ffi", entry.split("/")[0]])) {
    await copyTree(`${ROOT}/${top}`, `${tree}/${top}`);
  }
  for (const file of ["deno.json", "deno.lock"]) {
    await Deno.copyFile(`${ROOT}/${file}`, `${tree}/${file}`);
  }
  const graph = await moduleGraph(`${ROOT}/src/main.ts`);
  if (entry !== "src/main.ts") {
    for (const [k, v] of await moduleGraph(`${ROOT}/${entry}`)) graph.set(k, v);
  }
  const main = `file://${ROOT}/src/main.ts`;
  const startup = reachableIn(graph, main);
  startup.delete(main);
  const local = (spec: string) =>
    spec.startsWith(`file://${ROOT}/`) && spec.endsWith(".ts")
      ? spec.slice(`file://${ROOT}/`.length)
      : null;
  const lines = [...startup].map(local).filter((p) => p !== null).sort().map((p) =>
    `import "./${p}";`
  );
  await Deno.writeTextFile(`${tree}/${STARTUP}`, `${lines.join("\n")}\n`);
  const targets = new Set<string>();
  for (const deps of graph.values()) {
    for (const d of deps) if (d.dynamic && local(d.specifier)) targets.add(local(d.specifier)!);
  }
  for (const path of targets) {
    const up = "../".repeat(path.split("/").length - 1);
    await Deno.writeTextFile(`${tree}/${path}`, `\nimport "${up || "./"}${STARTUP}";\n`, {
      append: true,
    });
  }
}

/** Each module's dependencies, and whether each is imported by `import()`. */
export type ModuleGraph = Map<string, { specifier: string; dynamic: boolean }[]>;

/**
 * `deno info --json` of `root` (a path), as a {@linkcode ModuleGraph} keyed by specifier (the
 * bundle's start-up set here; what a path of the CLI loads in test/fixtures/module_graph.ts).
 */
export async function moduleGraph(root: string): Promise<ModuleGraph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", `${ROOT}/deno.json`, root],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error("deno info failed: cannot list the modules to bundle");
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  return new Map(info.modules.map((m) => [
    m.specifier,
    (m.dependencies ?? []).flatMap((d) =>
      d.code ? [{ specifier: d.code.specifier, dynamic: d.isDynamic === true }] : []
    ),
  ]));
}

/** `root` and every module it reaches: by static imports only, or also through `import()`. */
export function reachableIn(graph: ModuleGraph, root: string, dynamic = false): Set<string> {
  const seen = new Set<string>();
  const walk = (spec: string) => {
    if (seen.has(spec)) return;
    seen.add(spec);
    for (const d of graph.get(spec) ?? []) if (dynamic || !d.dynamic) walk(d.specifier);
  };
  walk(root);
  return seen;
}

/**
 * The maps name the staged copies; they are the repository's files line for line (the added
 * import is the last line), so they name those instead: relative to `dir` when it lies inside
 * the repository (`dist/bundle/` → `../../src/…`), else as file URLs.
 */
async function pointMapsAtSources(dir: string, tree: string): Promise<void> {
  const staged = `../${tree.split("/").at(-1)}/`;
  const inside = dir.startsWith(`${ROOT}/`);
  const root = inside
    ? "../".repeat(dir.slice(ROOT.length + 1).split("/").length)
    : `file://${ROOT}/`;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".js.map")) continue;
    const path = `${dir}/${entry.name}`;
    const map = JSON.parse(await Deno.readTextFile(path));
    map.sources = (map.sources as string[]).map((s) =>
      s.startsWith(staged) ? root + s.slice(staged.length) : s
    );
    await Deno.writeTextFile(path, JSON.stringify(map));
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
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
  const files = ["deno.json", "deno.lock", "dist/bundle.ts"];
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
