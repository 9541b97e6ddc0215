/**
 * Parses every verb but the bare `token` fast path (which `src/main.ts` handles) and runs it.
 * Flags are parsed into an options object apart from running the command (cli/cli), so
 * parsing is testable alone. `node:util` is fine here: it is off the cached path.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { stderrText, stdoutText } from "./output.ts";
import type { Verb, VerbValues } from "./verb.ts";

const VERBS: Record<string, () => Promise<Verb>> = {
  token: async () => (await import("./token_verb.ts")).tokenVerb,
  login: async () => (await import("./login.ts")).loginVerb,
  status: async () => (await import("./status.ts")).statusVerb,
  logout: async () => (await import("./logout.ts")).logoutVerb,
  refresh: async () => (await import("./refresh.ts")).refreshVerb,
  doctor: async () => (await import("./doctor.ts")).doctorVerb,
  setup: async () => (await import("./setup.ts")).setupVerb,
};

/** Flags every verb takes, before or after the verb (SPEC.md §2). */
const GLOBAL_OPTIONS = {
  help: { type: "boolean" as const, short: "h" },
  profile: { type: "string" as const },
  verbose: { type: "boolean" as const, short: "v" },
  version: { type: "boolean" as const, short: "V" },
};

const GLOBAL_HELP =
  `agent-runner-auth: OAuth tokens for AI coding agents (Claude Code's apiKeyHelper)

Usage: agent-runner-auth [--profile NAME] [-v] <verb> [flags]

Verbs:
  token     Print a valid access token on stdout (cached, refreshed, or after a browser sign-in)
  login     Sign in through the browser and save the tenant's settings
  status    Who is signed in, until when, and where the tokens are (--json)
  refresh   Refresh the access token now, never opening a browser (--force)
  logout    Revoke the session at the auth server and delete local tokens (--all)
  doctor    Check config, store, lock, port, auth domain, clock and Claude Code settings (--json)
  setup     Point Claude Code at agent-runner-auth: setup claude [--project] [--undo]

Flags (every verb, before or after it):
  --profile NAME  Use the tenant NAME (or set AGENT_RUNNER_PROFILE); default: the top level of config.json
  -v, --verbose   Redacted debug trace on stderr (same as AGENT_RUNNER_LOG=debug)
  -h, --help      Show help (also after a verb: agent-runner-auth login --help, or help login)
  -V, --version   Print the version

Exit codes: 0 ok, 1 not signed in, 2 usage, 3 config, 4 token store, 5 network,
            6 rejected by the auth server, 7 lock timeout, 8 sign-in failed, 70 internal.`;

/**
 * Where the verb is in `args`: the first word that is neither a flag nor the value of a
 * `--profile` before it, so `--profile work status` and `status --profile work` both work.
 */
export function verbIndex(args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") return i + 1 < args.length ? i + 1 : -1;
    if (a === "--profile") {
      i++;
      continue;
    }
    if (!a.startsWith("-") || a === "-") return i;
  }
  return -1;
}

/** Runs the command line; returns the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const at = verbIndex(args);
  const word = at >= 0 ? args[at] : undefined;
  const flags = at >= 0 ? [...args.slice(0, at), ...args.slice(at + 1)] : [...args];
  if (word === undefined || word === "help") {
    // `help VERB` is `VERB --help`; `help`, `--help` and `-V` alone answer on stdout.
    const target = word === "help" ? flags[verbIndex(flags)] : undefined;
    if (target !== undefined && VERBS[target]) return await runCli([target, "--help"]);
    if (target !== undefined) throw unknownVerb(target);
    const values = parseWith("", GLOBAL_OPTIONS, flags, false).values;
    if (values.version) return await printVersion();
    if (values.help || word === "help") {
      stdoutText(GLOBAL_HELP);
      return 0;
    }
    // No verb at all: the help is the error message, so it goes where errors go.
    stderrText(GLOBAL_HELP);
    return 2;
  }
  const load = VERBS[word];
  if (!load) throw unknownVerb(word);
  const verb = await load();
  const values = parseVerbArgs(verb, flags);
  if (values.verbose) Deno.env.set("AGENT_RUNNER_LOG", "debug");
  if (values.help) {
    stdoutText(`${verb.summary}\n\n${verb.usage}`);
    return 0;
  }
  if (values.version) return await printVersion();
  delete values.version;
  return await verb.run(values);
}

async function printVersion(): Promise<number> {
  const { version } = await import("../version.ts");
  stdoutText(`agent-runner-auth ${version()}`);
  return 0;
}

function unknownVerb(word: string): UsageError {
  const hint = word.startsWith("-") ? undefined : closest(word, Object.keys(VERBS));
  return new UsageError(
    `Unknown verb "${word}"${
      hint ? `; did you mean "${hint}"?` : ""
    } (see agent-runner-auth --help)`,
  );
}

/**
 * Parses `args` (the command line without the verb) for `verb`. Every failure is a UsageError
 * (exit 2) in our words that names the flag: an unknown flag with the closest match, a flag
 * without its value, a value given to a switch, an unexpected argument.
 */
export function parseVerbArgs(verb: Verb, args: string[]): VerbValues {
  const options = { ...verb.options, ...GLOBAL_OPTIONS };
  const { values, positionals } = parseWith(verb.name, options, args, true, verb.usage);
  const allowed = verb.subcommands ?? [];
  const max = allowed.length > 0 ? 1 : 0;
  if (positionals.length > max) {
    throw new UsageError(`${verb.name}: unexpected argument "${positionals[max]}"`);
  }
  if (positionals.length === 1) {
    if (!allowed.includes(positionals[0])) {
      const hint = closest(positionals[0], [...allowed]);
      throw new UsageError(
        `${verb.name}: unknown target "${positionals[0]}"${
          hint ? `; did you mean "${hint}"?` : ""
        } (expected ${allowed.join(" or ")})`,
      );
    }
    values.subcommand = positionals[0];
  }
  return values;
}

/** `node:util`'s parseArgs with its errors rewritten as ours (it names flags its own way). */
function parseWith(
  who: string,
  options: Verb["options"],
  args: string[],
  allowPositionals: boolean,
  usage = "",
): { values: VerbValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals });
    return { values: values as VerbValues, positionals };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${who ? `${who}: ` : ""}${usageProblem(message, options, usage)}`);
  }
}

/**
 * One parser message in our words. The parser says `Option '--tenant-url <value>' argument
 * missing`; we say `--tenant-url needs a value: --tenant-url URL`, with the placeholder the
 * verb's usage text uses.
 */
export function usageProblem(message: string, options: Verb["options"], usage = ""): string {
  const first = message.split("\n")[0];
  // The first quoted part names the flag: '-x', '--json' or '-p, --profile <value>'.
  const names = (/'(-[^']*)'/.exec(first)?.[1] ?? "").split(/[ ,]+/).filter((n) => /^-/.test(n));
  const flag = names.find((n) => n.startsWith("--")) ?? names[0];
  if (flag && /^Unknown option/i.test(first)) {
    const hint = closest(flag.replace(/^-+/, ""), Object.keys(options));
    return `unknown flag ${flag}${hint ? `; did you mean --${hint}?` : ""}`;
  }
  if (flag && /argument missing|argument is ambiguous/i.test(first)) {
    const placeholder = new RegExp(`${flag} ("[A-Z][^"]*"|[A-Z]+\\b)`).exec(usage)?.[1] ?? "VALUE";
    const next = /argument is ambiguous/i.test(first)
      ? `, not the flag that follows it (a value starting with "-" is written ${flag}=VALUE)`
      : "";
    return `${flag} needs a value: ${flag} ${placeholder}${next}`;
  }
  if (flag && /does not take an argument/i.test(first)) {
    return `${flag} is a switch and takes no value (write ${flag} alone)`;
  }
  if (/^Unexpected argument '([^']*)'/.test(first)) {
    return `unexpected argument "${/^Unexpected argument '([^']*)'/.exec(first)![1]}"`;
  }
  return first;
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
