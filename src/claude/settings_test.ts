import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import {
  anthropicBaseUrl,
  applyClaudeSetup,
  type Change,
  claudeSettingsPaths,
  claudeUserSettingsPath,
  desiredSettings,
  display,
  formatChange,
  helperCommand,
  inspectClaudeSettingsSources,
  loadRecords,
  mergeSettingsText,
  parseHelperCommand,
  type SetupRecord,
  undoClaudeSetup,
  undoSettingsText,
} from "./settings.ts";

const P = "/home/u/.claude/settings.json";
const TENANT = "https://acme.proxy.example.com";
const URL_ = `${TENANT}/anthropic/v1`;
const D = desiredSettings(TENANT);

/** The object the merge must produce: `text` parsed, with our three keys set. */
function intended(text: string, d = D): unknown {
  const o = text.trim() === "" ? {} : JSON.parse(text);
  o.apiKeyHelper = d.apiKeyHelper;
  o.env = {
    ...(o.env ?? {}),
    ANTHROPIC_BASE_URL: d["env.ANTHROPIC_BASE_URL"],
    CLAUDE_CODE_API_KEY_HELPER_TTL_MS: d["env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS"],
  };
  return o;
}

/** The record setup would keep after one merge. */
function recordOf(plan: ReturnType<typeof mergeSettingsText>): SetupRecord {
  const keys: SetupRecord["keys"] = {};
  for (const c of plan.changes) {
    keys[c.key] = c.before === undefined
      ? { after: c.after! }
      : { before: c.before, after: c.after! };
  }
  return { at: "", created_file: false, created_env: plan.createdEnv, keys, restore: null };
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.ok(!error.message.includes("\n"), "one line");
    return error.message;
  }
  throw new Error("expected a ConfigError");
}

Deno.test("settings: helper command, base URL and desired values", () => {
  assert.equal(helperCommand(), "agent-runner-auth token");
  assert.equal(helperCommand("default"), "agent-runner-auth token");
  assert.equal(helperCommand("work"), "agent-runner-auth token --profile work");
  assert.equal(anthropicBaseUrl("https://a.example.com/"), "https://a.example.com/anthropic/v1");
  assert.equal(anthropicBaseUrl("https://a.example.com//"), "https://a.example.com/anthropic/v1");
  assert.equal(
    anthropicBaseUrl("https://a.example.com/t1"),
    "https://a.example.com/t1/anthropic/v1",
  );
  assert.deepEqual(desiredSettings(TENANT, "work"), {
    "apiKeyHelper": "agent-runner-auth token --profile work",
    "env.ANTHROPIC_BASE_URL": URL_,
    "env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000",
  });
});

// Exact outputs for the common layouts: the bytes a user will see in their file.
const EXACT: [string, string, string][] = [
  [
    "empty object",
    "{}",
    `{
  "apiKeyHelper": "agent-runner-auth token",
  "env": {
    "ANTHROPIC_BASE_URL": "${URL_}",
    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000"
  }
}`,
  ],
  [
    "two-space file, no env, trailing newline kept",
    `{\n  "model": "opus"\n}\n`,
    `{
  "model": "opus",
  "apiKeyHelper": "agent-runner-auth token",
  "env": {
    "ANTHROPIC_BASE_URL": "${URL_}",
    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000"
  }
}
`,
  ],
  [
    "tabs",
    `{\n\t"model": "opus",\n\t"env": {\n\t\t"FOO": "1"\n\t}\n}`,
    `{\n\t"model": "opus",\n\t"env": {\n\t\t"FOO": "1",\n\t\t"ANTHROPIC_BASE_URL": "${URL_}",\n\t\t"CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000"\n\t},\n\t"apiKeyHelper": "agent-runner-auth token"\n}`,
  ],
  [
    "four spaces, empty env",
    `{\n    "env": {},\n    "model": "opus"\n}\n`,
    `{
    "env": {
        "ANTHROPIC_BASE_URL": "${URL_}",
        "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000"
    },
    "model": "opus",
    "apiKeyHelper": "agent-runner-auth token"
}
`,
  ],
  [
    "compact one line",
    `{"model":"opus"}`,
    `{"model":"opus","apiKeyHelper":"agent-runner-auth token","env":{"ANTHROPIC_BASE_URL":"${URL_}","CLAUDE_CODE_API_KEY_HELPER_TTL_MS":"3300000"}}`,
  ],
  [
    "one line with spaces",
    `{ "model": "opus", "x": 1 }\n`,
    `{ "model": "opus", "x": 1, "apiKeyHelper": "agent-runner-auth token", "env": {"ANTHROPIC_BASE_URL": "${URL_}", "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000"} }\n`,
  ],
  [
    "CRLF",
    `{\r\n  "model": "opus"\r\n}\r\n`,
    `{\r\n  "model": "opus",\r\n  "apiKeyHelper": "agent-runner-auth token",\r\n  "env": {\r\n    "ANTHROPIC_BASE_URL": "${URL_}",\r\n    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000"\r\n  }\r\n}\r\n`,
  ],
  [
    "values set differently are replaced in place",
    `{\n  "apiKeyHelper": "~/bin/key.sh",\n  "env": { "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": 60000, "ANTHROPIC_BASE_URL": "https://old" },\n  "z": 1\n}`,
    `{\n  "apiKeyHelper": "agent-runner-auth token",\n  "env": { "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000", "ANTHROPIC_BASE_URL": "${URL_}" },\n  "z": 1\n}`,
  ],
];

for (const [name, input, output] of EXACT) {
  Deno.test(`settings: merge, ${name}`, () => {
    const plan = mergeSettingsText(input, D, P);
    assert.equal(plan.text, output);
    assert.deepEqual(JSON.parse(plan.text), intended(input));
  });
}

// More shapes: checked by properties rather than exact bytes.
const SHAPES: [string, string][] = [
  [
    "env with other keys and nested values",
    `{
  "permissions": {
    "allow": ["Bash(npm run test:*)", "Read(~/.zshrc)"],
    "deny": []
  },
  "env": {
    "FOO": "bar",
    "NESTED_JSON": "{\\"a\\": 1}"
  },
  "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "x"}]}]},
  "numbers": [1, 2.5, -3e10, 0],
  "flags": [true, false, null]
}
`,
  ],
  [
    "unicode everywhere",
    `{\n  "note": "héllo ✓ 😀 \\u2603",\n  "ключ": {"値": "🌏"},\n  "env": {"LANG": "ja_JP.UTF-8"}\n}`,
  ],
  ["no trailing newline", `{\n  "model": "opus"\n}`],
  ["several trailing newlines and spaces", `{\n  "model": "opus"\n}\n\n  \n`],
  ["BOM", `\ufeff{\n  "model": "opus"\n}\n`],
  ["keys at column 0", `{\n"model": "opus"\n}\n`],
  ["closing brace on the last line", `{\n  "model": "opus",\n  "env": {\n    "A": "1"}}`],
  ["mixed: compact env in a pretty file", `{\n  "env": {"A": "1"},\n  "b": [\n    1\n  ]\n}\n`],
  ["apiKeyHelper first, env absent", `{\n  "apiKeyHelper": "agent-runner-auth token"\n}\n`],
  ["blank lines between members", `{\n  "a": 1,\n\n  "b": 2\n}\n`],
  ["value is an object being replaced", `{"apiKeyHelper": {"weird": true}, "env": {}}`],
  ["whitespace before colon", `{\n  "a" : 1\n}`],
  ["CRLF with env", `{\r\n\t"env": {\r\n\t\t"X": "y"\r\n\t}\r\n}`],
];

for (const [name, input] of SHAPES) {
  Deno.test(`settings: merge keeps the rest, ${name}`, () => {
    const plan = mergeSettingsText(input, D, P);
    assert.deepEqual(
      JSON.parse(plan.text.replace(/^\ufeff/, "")),
      intended(input.replace(/^\ufeff/, "")),
    );
    // Only insertions and replacements of our values: undoing them gives the input back.
    const back = undoSettingsText(plan.text, recordOf(plan), P);
    assert.deepEqual(back.warnings, []);
    assert.equal(back.text, input);
    if (input.includes("\r\n")) assert.doesNotMatch(plan.text, /(?<!\r)\n/, "CRLF kept");
    else assert.doesNotMatch(plan.text, /\r/);
    assert.equal(plan.text.startsWith("\ufeff"), input.startsWith("\ufeff"));
    // Idempotent: a second run changes nothing.
    const again = mergeSettingsText(plan.text, D, P);
    assert.deepEqual(again.changes, []);
    assert.equal(again.text, plan.text);
  });
}

Deno.test("settings: merge reports each change with the old raw value", () => {
  const input =
    `{"apiKeyHelper": "agent-runner-auth token", "env": {"ANTHROPIC_BASE_URL": "https://old/"}}`;
  const plan = mergeSettingsText(input, D, P);
  assert.deepEqual(plan.changes, [
    {
      key: "env.ANTHROPIC_BASE_URL",
      kind: "changed",
      before: '"https://old/"',
      after: JSON.stringify(URL_),
    },
    { key: "env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS", kind: "added", after: '"3300000"' },
  ]);
  assert.equal(plan.createdEnv, false);
  assert.deepEqual(plan.changes.map(formatChange), [
    `~ env.ANTHROPIC_BASE_URL: "https://old/" -> "${URL_}"`,
    `+ env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3300000"`,
  ]);
});

Deno.test("settings: already configured means no change and identical text", () => {
  const input =
    `{\n  "env": {\n    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "3300000",\n    "ANTHROPIC_BASE_URL": "${URL_}"\n  },\n  "apiKeyHelper": "agent-runner-auth token"\n}\n`;
  const plan = mergeSettingsText(input, D, P);
  assert.deepEqual(plan.changes, []);
  assert.equal(plan.text, input);
});

Deno.test("settings: missing or blank file gets a fresh one", () => {
  for (const input of [null, "", "  \n"]) {
    const plan = mergeSettingsText(input, D, P);
    assert.equal(plan.text, EXACT[0][2] + "\n");
    assert.equal(plan.changes.length, 3);
    assert.ok(plan.changes.every((c) => c.kind === "added"));
  }
});

Deno.test("settings: a non-default profile goes into the helper command", () => {
  const plan = mergeSettingsText("{}", desiredSettings(TENANT, "work"), P);
  assert.equal(JSON.parse(plan.text).apiKeyHelper, "agent-runner-auth token --profile work");
});

Deno.test("settings: refused files name the file and line and are not changed", async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      "line comment",
      `{\n  "a": 1,\n  // note\n  "b": 2\n}`,
      /settings\.json:3: comments are not allowed/,
    ],
    ["block comment", `{\n  /* x */ "a": 1\n}`, /settings\.json:2: comments are not allowed/],
    ["comment after the value", `{"a": 1}\n\n// bye\n`, /settings\.json:3: comments/],
    ["invalid JSON", `{\n  "a": 1\n  "b": 2\n}`, /settings\.json:3: expected "," or "}"/],
    ["trailing comma", `{\n  "a": 1,\n}`, /settings\.json:3: trailing comma/],
    ["single quotes", `{\n\n  'a': 1}`, /settings\.json:3: expected a quoted key/],
    ["unterminated", `{\n  "a": "x\n}`, /settings\.json:2: unescaped control character/],
    ["truncated", `{\n  "a": [1,`, /settings\.json:2: unexpected end of file/],
    ["top-level array", `\n[1, 2]`, /settings\.json:2: expected a JSON object at the top level/],
    [
      "nested too deeply (jsonc-parser recurses; a bound, not a stack overflow)",
      `{\n  "a": ${"[".repeat(100_000)}`,
      /settings\.json:2: nested too deeply/,
    ],
    [
      "non-breaking space (not JSON whitespace)",
      `{\n\u00a0"a": 1}`,
      /settings\.json:2: expected a quoted key/,
    ],
    ["top-level string", `"x"`, /settings\.json:1: expected a JSON object/],
    ["env not an object", `{\n  "env": "x"\n}`, /settings\.json:2: "env" must be an object/],
    [
      "duplicate apiKeyHelper",
      `{\n"apiKeyHelper": "a",\n"apiKeyHelper": "b"\n}`,
      /:3: "apiKeyHelper" appears more than once/,
    ],
    [
      "duplicate env key",
      `{"env": {\n"ANTHROPIC_BASE_URL": "a",\n"ANTHROPIC_BASE_URL": "b"}}`,
      /:3: "env\.ANTHROPIC_BASE_URL" appears more than once/,
    ],
  ];
  for (const [name, text, pattern] of cases) {
    await t.step(name, () => {
      const message = configError(() => mergeSettingsText(text, D, P));
      assert.match(message, pattern);
      assert.ok(message.startsWith(P + ":"), message);
    });
  }
});

Deno.test("settings: undo leaves keys the user changed, with a warning", () => {
  const input = `{\n  "model": "opus"\n}\n`;
  const plan = mergeSettingsText(input, D, P);
  const edited = plan.text.replace(URL_, "https://mine.example.com");
  const back = undoSettingsText(edited, recordOf(plan), P);
  assert.equal(
    back.text,
    `{\n  "model": "opus",\n  "env": {\n    "ANTHROPIC_BASE_URL": "https://mine.example.com"\n  }\n}\n`,
  );
  assert.equal(back.warnings.length, 1);
  assert.match(back.warnings[0], /env\.ANTHROPIC_BASE_URL was changed since setup/);
  assert.deepEqual(back.changes.map((c) => [c.key, c.kind]), [
    ["apiKeyHelper", "removed"],
    ["env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS", "removed"],
  ]);
});

Deno.test("settings: undo restores overwritten values byte for byte and keeps later user keys", () => {
  const input =
    `{\n  "apiKeyHelper": "~/bin/old.sh",\n  "env": {\n    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": 60000\n  }\n}`;
  const plan = mergeSettingsText(input, D, P);
  const edited = plan.text.replace(/\n}$/, `,\n  "theme": "dark"\n}`);
  const back = undoSettingsText(edited, recordOf(plan), P);
  assert.deepEqual(back.warnings, []);
  assert.equal(back.text, input.replace(/\n}$/, `,\n  "theme": "dark"\n}`));
});

Deno.test("settings: undo keeps a created env that the user added to", () => {
  const plan = mergeSettingsText(`{"a": 1}`, D, P);
  const edited = plan.text.replace(`"env": {`, `"env": {"MINE": "1", `);
  const back = undoSettingsText(edited, recordOf(plan), P);
  assert.equal(back.text, `{"a": 1, "env": {"MINE": "1"}}`);
});

Deno.test("settings: display masks token-like runs", () => {
  assert.equal(display('"echo sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA"'), '"echo sk-a…(redacted)"');
  assert.equal(display('"~/bin/get-key.sh"'), '"~/bin/get-key.sh"');
  assert.equal(display("60000"), "60000");
  const c: Change = { key: "apiKeyHelper", kind: "removed", before: '"agent-runner-auth token"' };
  assert.equal(formatChange(c), '- apiKeyHelper: "agent-runner-auth token"');
});

// --- I/O: backup, modes, sidecar, exact undo -------------------------------------------------

async function tempWorld() {
  const dir = await Deno.makeTempDir({ prefix: "ara-claude-" });
  return {
    dir,
    settings: `${dir}/home/.claude/settings.json`,
    record: `${dir}/config/claude-setup.json`,
    async cleanup() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function backups(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.includes(".bak-")) names.push(e.name);
  return names.sort();
}

Deno.test("settings io: apply then undo returns the original bytes; backup equals the original", async () => {
  const w = await tempWorld();
  try {
    await Deno.mkdir(`${w.dir}/home/.claude`, { recursive: true });
    const original = `{\r\n    "permissions": {"allow": ["Bash(ls)"]},\r\n    "note": "é"\r\n}`;
    await Deno.writeTextFile(w.settings, original, { mode: 0o644 });
    await Deno.chmod(w.settings, 0o644);
    const now = new Date("2025-03-04T05:06:07.890Z");
    const r = await applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record, now }, D);
    assert.equal(r.changes.length, 3);
    assert.equal(r.backup, `${w.settings}.bak-20250304T050607Z`);
    assert.equal(await Deno.readTextFile(r.backup!), original);
    assert.equal((await Deno.stat(r.backup!)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(w.settings)).mode! & 0o777, 0o644, "mode kept");
    assert.deepEqual(JSON.parse(await Deno.readTextFile(w.settings)), intended(original));
    assert.equal((await Deno.stat(w.record)).mode! & 0o777, 0o600);
    const rec = loadRecords(w.record).files[w.settings];
    assert.equal(rec.created_file, false);
    assert.equal(rec.created_env, true);
    assert.equal(rec.restore?.backup, r.backup);

    // Second run: nothing to change, nothing written.
    const again = await applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D);
    assert.deepEqual(again.changes, []);
    assert.equal(again.backup, null);
    assert.equal((await backups(`${w.dir}/home/.claude`)).length, 1);

    const u = await undoClaudeSetup({ settingsPath: w.settings, recordPath: w.record });
    assert.equal(u.outcome, "restored");
    assert.equal(u.changes.length, 3);
    assert.equal(await Deno.readTextFile(w.settings), original);
    assert.equal((await Deno.stat(w.settings)).mode! & 0o777, 0o644);
    await assert.rejects(Deno.stat(w.record), Deno.errors.NotFound, "empty sidecar removed");

    const none = await undoClaudeSetup({ settingsPath: w.settings, recordPath: w.record });
    assert.equal(none.outcome, "nothing");
  } finally {
    await w.cleanup();
  }
});

Deno.test("settings io: a new file is 0600 in a 0700 directory, and undo deletes it", async () => {
  const w = await tempWorld();
  try {
    const r = await applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D);
    assert.equal(r.created, true);
    assert.equal(r.backup, null);
    assert.equal((await Deno.stat(w.settings)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${w.dir}/home/.claude`)).mode! & 0o777, 0o700);
    const u = await undoClaudeSetup({ settingsPath: w.settings, recordPath: w.record });
    assert.equal(u.outcome, "deleted");
    await assert.rejects(Deno.stat(w.settings), Deno.errors.NotFound);
  } finally {
    await w.cleanup();
  }
});

Deno.test("settings io: two setups (tenant changed) then undo still return to the start", async () => {
  const w = await tempWorld();
  try {
    await Deno.mkdir(`${w.dir}/home/.claude`, { recursive: true });
    const original = `{\n  "env": {\n    "ANTHROPIC_BASE_URL": "https://direct"\n  }\n}\n`;
    await Deno.writeTextFile(w.settings, original);
    await applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D);
    const r2 = await applyClaudeSetup(
      { settingsPath: w.settings, recordPath: w.record, now: new Date(Date.now() + 2000) },
      desiredSettings("https://other.example.com"),
    );
    assert.deepEqual(r2.changes.map(formatChange), [
      `~ env.ANTHROPIC_BASE_URL: "${URL_}" -> "https://other.example.com/anthropic/v1"`,
    ]);
    const rec = loadRecords(w.record).files[w.settings];
    assert.equal(rec.keys["env.ANTHROPIC_BASE_URL"]?.before, '"https://direct"');
    const u = await undoClaudeSetup({ settingsPath: w.settings, recordPath: w.record });
    assert.equal(u.outcome, "restored");
    assert.equal(await Deno.readTextFile(w.settings), original);
  } finally {
    await w.cleanup();
  }
});

Deno.test("settings io: undo after user edits is key by key, with a backup", async () => {
  const w = await tempWorld();
  try {
    await Deno.mkdir(`${w.dir}/home/.claude`, { recursive: true });
    const original = `{\n  "model": "opus"\n}\n`;
    await Deno.writeTextFile(w.settings, original);
    await applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D);
    const written = await Deno.readTextFile(w.settings);
    const edited = written.replace('"3300000"', '"600000"').replace(
      '"model": "opus"',
      '"model": "sonnet"',
    );
    await Deno.writeTextFile(w.settings, edited);
    const u = await undoClaudeSetup({
      settingsPath: w.settings,
      recordPath: w.record,
      now: new Date(Date.now() + 5000),
    });
    assert.equal(u.outcome, "reverted");
    assert.equal(u.warnings.length, 1);
    assert.match(u.warnings[0], /CLAUDE_CODE_API_KEY_HELPER_TTL_MS was changed since setup/);
    assert.equal(
      await Deno.readTextFile(w.settings),
      `{\n  "model": "sonnet",\n  "env": {\n    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "600000"\n  }\n}\n`,
    );
    assert.equal(await Deno.readTextFile(u.backup!), edited);
  } finally {
    await w.cleanup();
  }
});

Deno.test("settings io: a broken file is left untouched, no backup, no record", async () => {
  const w = await tempWorld();
  try {
    await Deno.mkdir(`${w.dir}/home/.claude`, { recursive: true });
    const broken = `{\n  // mine\n  "a": 1\n}\n`;
    await Deno.writeTextFile(w.settings, broken);
    await assert.rejects(
      applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D),
      (e: unknown) => e instanceof ConfigError && /settings\.json:2: comments/.test(e.message),
    );
    assert.equal(await Deno.readTextFile(w.settings), broken);
    assert.deepEqual(await backups(`${w.dir}/home/.claude`), []);
    await assert.rejects(Deno.stat(w.record), Deno.errors.NotFound);
  } finally {
    await w.cleanup();
  }
});

Deno.test("settings io: a symlinked settings file stays a symlink", async () => {
  const w = await tempWorld();
  try {
    await Deno.mkdir(`${w.dir}/home/.claude`, { recursive: true });
    await Deno.mkdir(`${w.dir}/dotfiles`);
    const real = `${w.dir}/dotfiles/claude.json`;
    await Deno.writeTextFile(real, `{"a": 1}\n`);
    await Deno.symlink(real, w.settings);
    await applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D);
    assert.ok((await Deno.lstat(w.settings)).isSymlink);
    assert.equal(JSON.parse(await Deno.readTextFile(real)).apiKeyHelper, "agent-runner-auth token");
    await undoClaudeSetup({ settingsPath: w.settings, recordPath: w.record });
    assert.ok((await Deno.lstat(w.settings)).isSymlink);
    assert.equal(await Deno.readTextFile(real), `{"a": 1}\n`);
  } finally {
    await w.cleanup();
  }
});

Deno.test("settings io: a broken sidecar stops setup before the settings file is touched", async () => {
  const w = await tempWorld();
  try {
    await Deno.mkdir(`${w.dir}/config`, { recursive: true });
    await Deno.writeTextFile(w.record, "{oops");
    await assert.rejects(
      applyClaudeSetup({ settingsPath: w.settings, recordPath: w.record }, D),
      (e: unknown) => e instanceof ConfigError && e.message.includes("claude-setup.json"),
    );
    await assert.rejects(Deno.stat(w.settings), Deno.errors.NotFound);
  } finally {
    await w.cleanup();
  }
});

// --- Inspection for doctor -------------------------------------------------------------------

function byCheck(findings: ReturnType<typeof inspectClaudeSettingsSources>) {
  return Object.fromEntries(findings.map((f) => [f.check, f]));
}

const GOOD = JSON.stringify({
  apiKeyHelper: "agent-runner-auth token",
  env: { ANTHROPIC_BASE_URL: URL_, CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3300000" },
});

Deno.test("inspect: a configured user file passes every check", () => {
  const f = inspectClaudeSettingsSources([{ path: P, text: GOOD }], {
    tenantUrl: TENANT + "/",
    lifetimeMs: 3_600_000,
  });
  assert.ok(f.every((x) => x.ok), JSON.stringify(f, null, 2));
  assert.deepEqual(f.map((x) => x.check), [
    "claude apiKeyHelper",
    "claude ANTHROPIC_BASE_URL",
    "claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
    "claude env ANTHROPIC_API_KEY",
    "claude env ANTHROPIC_AUTH_TOKEN",
  ]);
});

Deno.test("inspect: planted faults are each caught, with a fix and no secret", () => {
  const secret = "sk-ant-api03-SECRETSECRETSECRETSECRET";
  const user = JSON.stringify({
    apiKeyHelper: "~/bin/get-key.sh",
    env: {
      ANTHROPIC_BASE_URL: "https://api.anthropic.com",
      CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "3600000",
    },
  });
  const project = JSON.stringify({
    env: { ANTHROPIC_API_KEY: secret, ANTHROPIC_AUTH_TOKEN: secret },
  });
  const f = byCheck(
    inspectClaudeSettingsSources(
      [{ path: P, text: user }, { path: "/p/.claude/settings.json", text: project }],
      { tenantUrl: TENANT, lifetimeMs: 3_600_000 },
    ),
  );
  assert.equal(f["claude apiKeyHelper"].ok, false);
  assert.match(f["claude apiKeyHelper"].detail, /does not run `agent-runner-auth token`/);
  assert.match(f["claude apiKeyHelper"].fix!, /setup claude/);
  assert.equal(f["claude ANTHROPIC_BASE_URL"].ok, false);
  assert.equal(f["claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].ok, false);
  assert.match(f["claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].fix!, /"3300000"/);
  assert.equal(f["claude env ANTHROPIC_API_KEY"].ok, false);
  assert.match(f["claude env ANTHROPIC_API_KEY"].detail, /\/p\/\.claude\/settings\.json/);
  assert.equal(f["claude env ANTHROPIC_AUTH_TOKEN"].ok, false);
  assert.ok(!JSON.stringify(f).includes("SECRET"), "no credential value in findings");
});

Deno.test("inspect: later files win key by key; env merges per variable", () => {
  const user = JSON.stringify({ apiKeyHelper: "other", env: { ANTHROPIC_BASE_URL: URL_ } });
  const local = JSON.stringify({ apiKeyHelper: "/usr/local/bin/agent-runner-auth token" });
  const f = byCheck(
    inspectClaudeSettingsSources(
      [{ path: P, text: user }, { path: "/p/x", text: null }, { path: "/p/local", text: local }],
      { tenantUrl: TENANT },
    ),
  );
  assert.equal(f["claude apiKeyHelper"].ok, true);
  assert.match(f["claude apiKeyHelper"].detail, /\/p\/local/);
  assert.equal(f["claude ANTHROPIC_BASE_URL"].ok, true);
  assert.equal(f["claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].ok, true, "unset TTL is the default");
});

Deno.test("inspect: without a config the base URL is shown, not judged", () => {
  const f = byCheck(inspectClaudeSettingsSources([{ path: P, text: GOOD }], {
    tenantUrl: null,
    lifetimeMs: null,
  }));
  assert.equal(f["claude ANTHROPIC_BASE_URL"].ok, true);
  assert.match(f["claude ANTHROPIC_BASE_URL"].detail, /no tenant_url in the config/);
  assert.equal(f["claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].ok, true);
});

Deno.test("inspect: profile, missing helper, broken file, provider and forced login", () => {
  const f1 = byCheck(inspectClaudeSettingsSources([{ path: P, text: GOOD }], {
    tenantUrl: TENANT,
    profile: "work",
  }));
  assert.equal(f1["claude apiKeyHelper"].ok, false);
  assert.match(f1["claude apiKeyHelper"].fix!, /--profile work/);

  const viaEnv = JSON.stringify({
    apiKeyHelper: "agent-runner-auth token",
    env: { AGENT_RUNNER_PROFILE: "work" },
  });
  const f2 = byCheck(inspectClaudeSettingsSources([{ path: P, text: viaEnv }], {
    tenantUrl: TENANT,
    profile: "work",
  }));
  assert.equal(f2["claude apiKeyHelper"].ok, true);

  const f3 = inspectClaudeSettingsSources([{ path: P, text: "{\n// x\n}" }], { tenantUrl: TENANT });
  assert.equal(f3[0].check, "claude settings file");
  assert.match(f3[0].detail, /settings\.json:2: comments/);
  assert.equal(byCheck(f3)["claude apiKeyHelper"].ok, false);

  const f4 = byCheck(inspectClaudeSettingsSources([
    {
      path: P,
      text: JSON.stringify({ forceLoginMethod: "claudeai", env: { CLAUDE_CODE_USE_BEDROCK: "1" } }),
    },
  ], { tenantUrl: TENANT }));
  assert.equal(f4["claude forceLoginMethod"].ok, false);
  assert.equal(f4["claude env CLAUDE_CODE_USE_BEDROCK"].ok, false);

  const f5 = byCheck(inspectClaudeSettingsSources([
    { path: P, text: JSON.stringify({ env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: 3300000 } }) },
  ], { tenantUrl: TENANT }));
  assert.equal(f5["claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].ok, false);
  assert.match(f5["claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].detail, /not a string/);
});

Deno.test("inspect: which helper commands are ours", () => {
  const cases: [string, boolean, string?][] = [
    ["agent-runner-auth token", true],
    ["  agent-runner-auth token  ", true],
    ["/opt/homebrew/bin/agent-runner-auth token", true],
    ["~/.local/bin/agent-runner-auth token --profile work", true, "work"],
    ["agent-runner-auth token --profile=work", true, "work"],
    ['"C:\\Program Files\\agent-runner-auth.exe" token', true],
    ["agent-runner-auth login", false],
    ["agent-runner-auth token --verbose", false],
    ["/usr/bin/not-agent-runner-auth token", false],
    ["echo token", false],
  ];
  for (const [command, ours, profile] of cases) {
    const p = parseHelperCommand(command);
    assert.equal(p.ours, ours, command);
    assert.equal(p.profile, profile, command);
  }
});

Deno.test("settings: paths honour CLAUDE_CONFIG_DIR and list files in precedence order", () => {
  const env = (m: Record<string, string>) => ({ get: (k: string) => m[k] });
  assert.equal(claudeUserSettingsPath(env({ HOME: "/h" }), "linux"), "/h/.claude/settings.json");
  assert.equal(
    claudeUserSettingsPath(env({ HOME: "/h", CLAUDE_CONFIG_DIR: "/c/" }), "linux"),
    "/c/settings.json",
  );
  assert.deepEqual(
    claudeSettingsPaths({ env: env({ HOME: "/h" }), cwd: "/w", os: "linux" }),
    [
      { scope: "user", path: "/h/.claude/settings.json" },
      { scope: "project", path: "/w/.claude/settings.json" },
      { scope: "local", path: "/w/.claude/settings.local.json" },
      { scope: "managed", path: "/etc/claude-code/managed-settings.json" },
    ],
  );
});
