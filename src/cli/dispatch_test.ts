import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { parseVerbArgs, usageProblem, verbIndex } from "./dispatch.ts";
import type { Verb } from "./verb.ts";

const verb: Verb = {
  name: "login",
  summary: "",
  usage: 'Usage: agent-runner-auth login [--tenant-url URL] [--scope "S ..."] [--profile NAME]',
  options: {
    "tenant-url": { type: "string" },
    scope: { type: "string" },
    json: { type: "boolean" },
  },
  run: () => Promise.resolve(0),
};

Deno.test("dispatch: the verb is the first word that is not a flag or --profile's value", () => {
  const cases: [string[], number][] = [
    [["status"], 0],
    [["--profile", "work", "status"], 2],
    [["--profile=work", "-v", "status", "--json"], 2],
    [["-v", "--help"], -1],
    [["--profile", "status"], -1],
    [[], -1],
  ];
  for (const [args, at] of cases) assert.equal(verbIndex(args), at, args.join(" "));
});

Deno.test("dispatch: global flags parse on either side of the verb", () => {
  const values = parseVerbArgs(verb, ["--profile", "work", "-v", "--json"]);
  assert.equal(values.profile, "work");
  assert.equal(values.verbose, true);
  assert.equal(values.json, true);
});

Deno.test("dispatch: the parser's messages in our words, naming the flag", () => {
  const cases: [string[], string][] = [
    [["--tenant-url"], "login: --tenant-url needs a value: --tenant-url URL"],
    [["--scope"], 'login: --scope needs a value: --scope "S ..."'],
    [["--profile"], "login: --profile needs a value: --profile NAME"],
    [["--json=1"], "login: --json is a switch and takes no value (write --json alone)"],
    [["--tenant-ur", "x"], "login: unknown flag --tenant-ur; did you mean --tenant-url?"],
    [["-x"], "login: unknown flag -x"],
    [["extra"], 'login: unexpected argument "extra"'],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseVerbArgs(verb, args), (e) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.message, message);
      return true;
    });
  }
  assert.match(
    usageProblem(
      "Option '--tenant-url <value>' argument is ambiguous.\nDid you forget…",
      {},
      verb.usage,
    ),
    /^--tenant-url needs a value: --tenant-url URL, not the flag that follows it/,
  );
});
