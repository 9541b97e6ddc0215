/**
 * Entry point, and the only file that calls `Deno.exit` (STYLE.md §1).
 *
 * `token` (with at most `--profile NAME`, before or after it) is dispatched straight from
 * `Deno.args` so the cached path never loads `node:util` or any npm package (SPEC.md §8); every
 * other command line goes through the lazily imported parser. Failures are reported as one
 * stderr line and appended to the log file; an expected failure (an `AppError`) never prints a
 * stack, even with `-v` (the trace adds its causes as lines); only an internal error (exit 70)
 * does. The explicit exit also ends the process when a timed-out keychain
 * call is still pending on an FFI thread (research deno-ffi.md §0.6).
 *
 * @module
 */

import { AppError, exitCodeFor } from "./errors.ts";
import { stderrLine } from "./cli/output.ts";
// The cached `token` path, imported statically (issue 14): a compiled binary keeps a V8 code
// cache only for the modules it loads at start-up, never for dynamic imports, so these would
// otherwise be compiled afresh on every call; and loading them after the early read starts, to
// overlap the keyring's answers, measured no faster in the bundle (dist/bundle.ts, which puts
// all of them in one chunk). Nothing here loads `node:`, npm or network code
// (test/startup_imports_test.ts); the other verbs still load theirs lazily.
import { startEarlyRead } from "./store/early_read.ts";
import { runToken } from "./cli/token.ts";

/**
 * `["token"]`, `["token", "--profile", "x"]`, `["token", "--profile=x"]`, and the same with
 * the flag before the verb (`["--profile", "x", "token"]`) → the profile flag.
 */
function fastTokenArgs(args: string[]): { profile?: string } | null {
  if (args.length === 1) return args[0] === "token" ? {} : null;
  if (args.length === 3) {
    if (args[0] === "token" && args[1] === "--profile") return { profile: args[2] };
    if (args[2] === "token" && args[0] === "--profile") return { profile: args[1] };
    return null;
  }
  if (args.length !== 2) return null;
  const flag = args[0] === "token" ? args[1] : args[1] === "token" ? args[0] : "";
  return flag.startsWith("--profile=") ? { profile: flag.slice("--profile=".length) } : null;
}

async function main(args: string[]): Promise<number> {
  const fast = fastTokenArgs(args);
  if (fast) {
    // The Secret Service read's round trips then overlap the config and store set-up below.
    await startEarlyRead(fast.profile);
    return await runToken(fast.profile);
  }
  const { runCli } = await import("./cli/dispatch.ts");
  return await runCli(args);
}

let code: number;
try {
  code = await main(Deno.args);
} catch (error) {
  // An unexpected error's text is not ours: it may quote input (a pasted URL with its code).
  const message = error instanceof AppError
    ? error.message
    : `Internal error (please report it): ${
      (await import("./log.ts").catch(() => null))?.redact(
        error instanceof Error ? error.message : String(error),
      ) ?? "(message withheld)"
    }`;
  stderrLine(message);
  code = exitCodeFor(error);
  try {
    const [{ appendLog, debugEnabled, redact }, { resolvePaths }] = await Promise.all([
      import("./log.ts"),
      import("./config/paths.ts"),
    ]);
    if (debugEnabled() && error instanceof Error) {
      // An expected error is its message plus, in the trace, what caused it; a stack only
      // for an internal error, where it is what a bug report needs.
      if (error instanceof AppError) {
        for (let c = error.cause, n = 0; c !== undefined && n < 5; c = causeOf(c), n++) {
          console.error(`agent-runner-auth: debug: caused by: ${redact(messageOf(c))}`);
        }
      } else if (error.stack) console.error(redact(error.stack));
    }
    const verb = Deno.args.find((a, i) => !a.startsWith("-") && Deno.args[i - 1] !== "--profile") ??
      "";
    const profile = Deno.env.get("AGENT_RUNNER_PROFILE") ||
      Deno.args.find((_a, i) => Deno.args[i - 1] === "--profile") ||
      Deno.args.find((a) => a.startsWith("--profile="))?.slice(10) || "default";
    appendLog(resolvePaths().log, `${verb} [${profile}] exit ${code}: ${message}`);
  } catch {
    // no HOME, no log: the stderr line above is all we can do
  }
}
Deno.exit(code);

function causeOf(error: unknown): unknown {
  return error instanceof Error ? error.cause : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
