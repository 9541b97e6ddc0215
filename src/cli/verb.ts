/**
 * The shape of one verb, in a file of its own: every verb module imports this type, and
 * `dispatch.ts` imports every verb, so the type living in `dispatch.ts` made the one import
 * circle of the code base (issue 13 point 11). This file imports nothing.
 *
 * @module
 */

/** Parsed flag values of one command line: flag name → value, plus `subcommand`. */
export type VerbValues = Record<string, string | boolean | undefined>;

/** One verb: its flags, its help, and how to run it. */
export interface Verb {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, { type: "string" | "boolean"; short?: string }>;
  run: (values: VerbValues) => Promise<number>;
  /**
   * Words the verb accepts as its one positional argument (`setup claude`), passed to `run`
   * as `values.subcommand`. Verbs without it take no positionals.
   */
  subcommands?: readonly string[];
}
