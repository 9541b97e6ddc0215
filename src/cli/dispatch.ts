/**
 * Parses every verb but the bare `token` fast path (which `src/main.ts` handles) and runs it.
 * Flags are parsed into an options object apart from running the command (cli/cli), so
 * parsing is testable alone. `node:util` is fine here: it is off the cached path.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { stderrText } from "./output.ts";

/** One verb: its flags, its help, and how to run it. */
export interface Verb {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, { type: "string" | "boolean"; short?: string }>;
  run: (values: Record<string, string | boolean | undefined>) => Promise<number>;
  /**
   * Words the verb accepts as its one positional argument (`setup claude`), passed to `run`
   * as `values.subcommand`. Verbs without it take no positionals.
   */
  subcommands?: readonly string[];
}

const VERBS: Record<string, () => Promise<Verb>> = {
  token: async () => (await import("./token_verb.ts")).tokenVerb,
  login: async () => (await import("./login.ts")).loginVerb,
  status: async () => (await import("./status.ts")).statusVerb,
  logout: async () => (await import("./logout.ts")).logoutVerb,
  refresh: async () => (await import("./refresh.ts")).refreshVerb,
  doctor: async () => (await import("./doctor.ts")).doctorVerb,
  setup: async () => (await import("./setup.ts")).setupVerb,
};

const GLOBAL_HELP =
  `agent-runner-auth: OAuth tokens for AI coding agents (Claude Code's apiKeyHelper)

Usage: agent-runner-auth <verb> [flags]

Verbs:
  token     Print a valid access token on stdout (cached, refreshed, or after a browser sign-in)
  login     Sign in through the browser and save the tenant's settings
  status    Who is signed in, until when, and where the tokens are (--json)
  refresh   Refresh the access token now, never opening a browser (--force)
  logout    Revoke the session at the auth server and delete local tokens (--all)
  doctor    Check config, store, lock, port, auth domain, clock and Claude Code settings (--json)
  setup     Point Claude Code at agent-runner-auth: setup claude [--project] [--undo]

Flags (every verb):
  --profile NAME  Use the tenant NAME (or set AGENT_RUNNER_PROFILE); default: the top level of config.json
  -v, --verbose   Redacted debug trace on stderr (same as AGENT_RUNNER_LOG=debug)
  -h, --help      Show help (also after a verb: agent-runner-auth login --help)
  -V, --version   Print the version

Exit codes: 0 ok, 1 not signed in, 2 usage, 3 config, 4 token store, 5 network,
            6 rejected by the auth server, 7 lock timeout, 8 sign-in failed, 70 internal.`;

/** Runs the command line; returns the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    stderrText(GLOBAL_HELP);
    return first === undefined ? 2 : 0;
  }
  if (first === "-V" || first === "--version") {
    const { version } = await import("../version.ts");
    console.log(`agent-runner-auth ${version()}`);
    return 0;
  }
  const load = VERBS[first];
  if (!load) {
    const hint = closest(first, Object.keys(VERBS));
    throw new UsageError(
      `Unknown verb "${first}"${
        hint ? `; did you mean "${hint}"?` : ""
      } (see agent-runner-auth --help)`,
    );
  }
  const verb = await load();
  const values = parseVerbArgs(verb, rest);
  if (values.verbose) Deno.env.set("AGENT_RUNNER_LOG", "debug");
  if (values.help) {
    stderrText(`${verb.summary}\n\n${verb.usage}`);
    return 0;
  }
  return await verb.run(values);
}

/** Parses `args` for `verb`; unknown flags become a UsageError naming the flag and a hint. */
export function parseVerbArgs(
  verb: Verb,
  args: string[],
): Record<string, string | boolean | undefined> {
  const options = {
    ...verb.options,
    help: { type: "boolean" as const, short: "h" },
    profile: { type: "string" as const },
    verbose: { type: "boolean" as const, short: "v" },
  };
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: true,
    });
    const allowed = verb.subcommands ?? [];
    const max = allowed.length > 0 ? 1 : 0;
    if (positionals.length > max) {
      throw new UsageError(`${verb.name}: unexpected argument "${positionals[max]}"`);
    }
    const out = values as Record<string, string | boolean | undefined>;
    if (positionals.length === 1) {
      if (!allowed.includes(positionals[0])) {
        const hint = closest(positionals[0], [...allowed]);
        throw new UsageError(
          `${verb.name}: unknown target "${positionals[0]}"${
            hint ? `; did you mean "${hint}"?` : ""
          } (expected ${allowed.join(" or ")})`,
        );
      }
      out.subcommand = positionals[0];
    }
    return out;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const flag = /'(-{1,2}[^' ]+)'/.exec(message)?.[1];
    if (flag && /Unknown option/i.test(message)) {
      const hint = closest(flag.replace(/^-+/, ""), Object.keys(options));
      throw new UsageError(
        `${verb.name}: unknown flag ${flag}${hint ? `; did you mean --${hint}?` : ""}`,
      );
    }
    throw new UsageError(`${verb.name}: ${message.split("\n")[0]}`);
  }
}

/** The candidate within edit distance 2 (or a prefix match), for "did you mean". */
export function closest(input: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(input) && input.length >= 2 ? 0.5 : levenshtein(input, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= 2 ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
