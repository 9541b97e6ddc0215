/**
 * `deno task test:windows`: the Windows backend, the Windows lock and the whole `token` flow on
 * the Windows build of Deno, run for real under Wine 10 (research: windows-under-wine.md).
 *
 * 1. Builds, or reuses, a Debian trixie chroot with Wine 10 and the pinned Deno's Windows build
 *    (`setup.sh`; about 6 minutes once, outside the repository): `AGENT_RUNNER_WINE_ROOT=DIR`
 *    names it, default `/var/cache/agent-runner-wine` (root) or
 *    `~/.cache/agent-runner-wine`.
 * 2. Runs ONE `deno.exe test` under Wine (`enter.sh`, a private mount namespace with a fresh
 *    WINEPREFIX on a tmpfs, so a fresh Credential Manager) over the files in {@linkcode FILES},
 *    selecting the tests whose name says "under Wine" (`test/windows/platform.ts`). Every
 *    `deno.exe` start costs 2-3 s under Wine, so the tests share that one invocation and start
 *    only the child processes they are about.
 * 3. Ends with the plain `N passed, N failed` line; exits 1 when anything failed.
 *
 * Without root, debootstrap or unshare it prints one line saying why it skipped and exits 0
 * (`.ci/run` has root and fails instead).
 *
 * Usage: `deno task test:windows [-- extra deno test args, e.g. --filter NAME]`.
 *
 * @module
 */

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const HERE = `${REPO}/test/windows`;

/** Every file with tests that run on Windows; the Wine run keeps those named "under Wine". */
export const FILES = [
  "src/lock/windows_test.ts",
  "test/store_windows_credential_manager_test.ts",
  "test/windows/wine_store_test.ts",
  "test/windows/wine_lock_test.ts",
  "test/windows/wine_token_test.ts",
];

/** The start of the one line printed when this machine cannot run the Wine tests. */
const SKIPPED = "test:windows skipped:";

function defaultRoot(): string {
  if (Deno.uid() === 0) return "/var/cache/agent-runner-wine";
  return `${Deno.env.get("HOME") ?? "/tmp"}/.cache/agent-runner-wine`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

async function main(extra: string[]): Promise<number> {
  const started = performance.now();
  const denoVersion = (await Deno.readTextFile(`${REPO}/.deno-version`)).trim();
  const root = Deno.env.get("AGENT_RUNNER_WINE_ROOT") || defaultRoot();
  if (Deno.build.os !== "linux") {
    console.log(`${SKIPPED} the Wine chroot is built on Linux only, this is ${Deno.build.os}`);
    return 0;
  }

  const setup = await new Deno.Command("bash", {
    args: [`${HERE}/setup.sh`, root, denoVersion],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (setup.code === 77) return 0; // setup.sh printed the one "test:windows skipped: …" line
  if (setup.code !== 0) {
    console.log(`Wine environment setup failed (exit ${setup.code}) in ${root}`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  const setupMs = performance.now() - started;

  // deno test takes one --filter: a user's filter narrows the "under Wine" selection.
  const at = extra.indexOf("--filter");
  const narrow = at === -1 ? undefined : extra.splice(at, 2)[1];
  const quoted = narrow?.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const filter = quoted === undefined
    ? "under Wine"
    : `/under Wine.*${quoted}|${quoted}.*under Wine/`; // Rust's regex: no lookahead
  const args = ["test", "-A", "--no-prompt", "--filter", filter, ...extra, ...FILES];
  const testStarted = performance.now();
  const child = new Deno.Command("unshare", {
    args: [
      "--mount",
      "--propagation",
      "private",
      "--",
      "bash",
      `${HERE}/enter.sh`,
      root,
      REPO,
      denoVersion,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Echo the run as it goes (it takes minutes) and keep it to read the summary.
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    output += decoder.decode(chunk, { stream: true });
  }
  const status = await child.status;
  const testMs = performance.now() - testStarted;

  // deno test's summary: "ok | 17 passed (12 steps) | 0 failed (…)" or "FAILED | …".
  const summary = output.split(/\r?\n/).filter((l) => /^(ok|FAILED) \| /.test(l)).at(-1) ?? "";
  const passed = Number(/(\d+) passed/.exec(summary)?.[1] ?? 0);
  let failed = Number(/(\d+) failed/.exec(summary)?.[1] ?? 0);
  if (status.code !== 0 && failed === 0) failed = 1; // a crash, a type error, no summary
  if (status.code === 0 && passed === 0) {
    console.log('No test named "under Wine" ran: the filter or the Wine detection is broken');
    failed = 1;
  }
  if (narrow === undefined && extra.length === 0 && passed > 0 && passed < MIN_TESTS) {
    console.log(`Only ${passed} tests ran under Wine; expected at least ${MIN_TESTS}`);
    failed += 1;
  }
  console.log(
    `\nWine: setup ${seconds(setupMs)} (reused when ${root} was ready), ` +
      `tests ${seconds(testMs)}, total ${seconds(performance.now() - started)}`,
  );
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

/** The run is incomplete if fewer tests than this ran (a file silently dropped, say). */
const MIN_TESTS = 15;

if (import.meta.main) Deno.exit(await main(Deno.args));
