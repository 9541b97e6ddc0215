/**
 * Entry point, and the only file that calls `Deno.exit` (STYLE.md §1).
 *
 * `token` is dispatched straight from `Deno.args` so the cached path never loads `node:util`
 * or any npm package (SPEC.md §8); every other verb goes through the lazily imported parser.
 * The explicit exit also ends the process when a timed-out keychain call is still pending on
 * an FFI thread (research deno-ffi.md §0.6).
 *
 * @module
 */

import { exitCodeFor } from "./errors.ts";
import { stderrLine } from "./cli/output.ts";

async function main(args: string[]): Promise<number> {
  if (args.length === 1 && args[0] === "token") {
    const { runToken } = await import("./cli/token.ts");
    return await runToken();
  }
  const { runCli } = await import("./cli/dispatch.ts");
  return await runCli(args);
}

let code: number;
try {
  code = await main(Deno.args);
} catch (error) {
  stderrLine(error instanceof Error ? error.message : String(error));
  if (Deno.env.get("AGENT_RUNNER_LOG") === "debug" && error instanceof Error && error.stack) {
    console.error(error.stack);
  }
  code = exitCodeFor(error);
}
Deno.exit(code);
