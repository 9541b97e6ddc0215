/**
 * Claude Code's `settings.json`: the surgical merge behind `setup claude`, its undo, and the
 * read-only inspection `doctor` runs (SPEC.md §2, issue 4; research A.1, A.3, A.5).
 *
 * Why surgical: users keep hand-formatted settings (hooks, permissions, long allow lists), and
 * a parse-and-re-stringify rewrite would reflow every line they own. So the file is parsed with
 * Microsoft's `jsonc-parser` (`./json_edit.ts`), which gives every value its source span, and
 * only the values of `apiKeyHelper`, `env.ANTHROPIC_BASE_URL` and
 * `env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS` are replaced, or new members inserted after the last
 * one with the indentation, separators and line endings the file already uses. After every
 * edit the result is read again with `JSON.parse` and compared with the intended object, so an
 * editing bug can never write a file that means something else.
 *
 * Files with comments (JSONC) or invalid JSON are refused with their line: Claude Code reads
 * them as plain JSON, and guessing what a broken file means is how settings get lost.
 *
 * Undo: what setup changed is recorded in a sidecar (`claude-setup.json` in our config
 * directory), keyed by the settings file's absolute path: for each key the raw text of the
 * value it replaced (absent when setup created the key) and the value it wrote. When the file
 * is still byte-for-byte what setup wrote, undo puts back the backup (exact original bytes).
 * Otherwise it undoes key by key: keys still holding our value are removed or get their old
 * text back, keys the user changed since are left alone with a warning.
 *
 * Needs `--allow-read --allow-write --allow-env`. `setup` and `doctor` import this module (and
 * so jsonc-parser) dynamically: the `token` path never loads it
 * (test/setup_claude_imports_test.ts).
 *
 * @module
 */

import { ensurePrivateDir, writeFileAtomic } from "../config/config.ts";
import { DEFAULT_PROFILE } from "../config/config.ts";
import { ConfigError } from "../errors.ts";
import { CLAUDE_DEFAULT_TTL_MS, DEFAULT_POLICY } from "../token/classify.ts";
import {
  applyEdits,
  detectStyle,
  findNodeAtLocation,
  insertMember,
  JsonSyntaxError,
  keyOf,
  lineOf,
  membersNamed,
  type Node,
  parseStrictJson,
  removeMember,
  replaceValue,
  setValue,
  textOf,
  valueOf,
} from "./json_edit.ts";

// ---------------------------------------------------------------------------------------------
// What setup writes

/** The settings keys setup owns, as dotted paths. */
export type SetupKey =
  | "apiKeyHelper"
  | "env.ANTHROPIC_BASE_URL"
  | "env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS";

/** Order in which keys are written and reported. */
export const SETUP_KEYS: readonly SetupKey[] = [
  "apiKeyHelper",
  "env.ANTHROPIC_BASE_URL",
  "env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
];

/**
 * 55 minutes, as the connect page sets it: just under Cognito's default one-hour access token,
 * so Claude Code re-runs the helper before the token it holds expires. A string because the
 * settings `env` block holds environment variables.
 */
export const HELPER_TTL_MS = "3300000";

/** The values setup writes, all strings. */
export type DesiredSettings = Record<SetupKey, string>;

/** `agent-runner-auth token`, plus `--profile NAME` for any profile but the default. */
export function helperCommand(profile: string = DEFAULT_PROFILE): string {
  return profile === DEFAULT_PROFILE
    ? "agent-runner-auth token"
    : `agent-runner-auth token --profile ${profile}`;
}

/** `<tenant_url>/anthropic/v1` without a doubled slash. */
export function anthropicBaseUrl(tenantUrl: string): string {
  return `${tenantUrl.trim().replace(/\/+$/, "")}/anthropic/v1`;
}

/** Everything setup writes for a tenant and profile. */
export function desiredSettings(tenantUrl: string, profile?: string): DesiredSettings {
  return {
    "apiKeyHelper": helperCommand(profile),
    "env.ANTHROPIC_BASE_URL": anthropicBaseUrl(tenantUrl),
    "env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS": HELPER_TTL_MS,
  };
}

// ---------------------------------------------------------------------------------------------
// Parsing and locating (jsonc-parser, through ./json_edit.ts)

/**
 * The top-level object of a settings text. Every error is a {@linkcode ConfigError} reading
 * `<path>:<line>: <why>`: the file is the user's configuration, broken in a way they must fix.
 */
export function parseSettings(text: string, path: string): Node {
  let root: Node;
  try {
    root = parseStrictJson(text);
  } catch (error) {
    if (error instanceof JsonSyntaxError) {
      throw new ConfigError(
        `${path}:${lineOf(text, error.offset)}: ${error.message}; the file was not changed`,
      );
    }
    throw error;
  }
  if (root.type !== "object") {
    throw new ConfigError(
      `${path}:${
        lineOf(text, root.offset)
      }: expected a JSON object at the top level; the file was not changed`,
    );
  }
  return root;
}

/** The `env` object, `null` when absent; anything but an object is refused. */
function envObject(text: string, root: Node, path: string): Node | null {
  const value = findNodeAtLocation(root, ["env"]);
  if (!value) return null;
  if (value.type !== "object") {
    throw new ConfigError(
      `${path}:${lineOf(text, value.offset)}: "env" must be an object; the file was not changed`,
    );
  }
  return value;
}

function splitKey(key: SetupKey): { inEnv: boolean; name: string } {
  return key.startsWith("env.") ? { inEnv: true, name: key.slice(4) } : { inEnv: false, name: key };
}

/** The jsonc-parser path of a setup key: `env.X` is `["env", "X"]`. */
function pathOf(key: SetupKey): string[] {
  const { inEnv, name } = splitKey(key);
  return inEnv ? ["env", name] : [name];
}

/** The property for `key` (a property node), its object, and the root; re-parsed each time. */
function locate(
  text: string,
  key: SetupKey,
  path: string,
): { root: Node; obj: Node | null; member?: Node } {
  const root = parseSettings(text, path);
  const { inEnv, name } = splitKey(key);
  const obj = inEnv ? envObject(text, root, path) : root;
  // jsonc-parser links each value to its property node, which removal needs
  return { root, obj, member: obj ? findNodeAtLocation(obj, [name])?.parent : undefined };
}

/** Whether a value node is the scalar `value` (setup only writes strings). */
function holds(node: Node, value: unknown): boolean {
  return node.type !== "object" && node.type !== "array" && node.value === value;
}

// ---------------------------------------------------------------------------------------------
// Merge

/** One key setup changed (or, in an undo, put back). */
export interface Change {
  key: SetupKey;
  /** `added`: the key was absent; `changed`: it held another value; `removed`: undo deleted it. */
  kind: "added" | "changed" | "removed";
  /** Raw JSON text of the value before (absent for `added`). */
  before?: string;
  /** Raw JSON text of the value after (absent for `removed`). */
  after?: string;
}

/** The new text and what differs; `changes` empty means the file is already configured. */
export interface MergePlan {
  text: string;
  changes: Change[];
  /** Setup created the `env` object (undo removes it when nothing else is left in it). */
  createdEnv: boolean;
}

/** A fresh settings file holding only what setup writes (2-space indent, LF, final newline). */
function freshSettings(desired: DesiredSettings): string {
  return JSON.stringify(
    {
      apiKeyHelper: desired.apiKeyHelper,
      env: {
        ANTHROPIC_BASE_URL: desired["env.ANTHROPIC_BASE_URL"],
        CLAUDE_CODE_API_KEY_HELPER_TTL_MS: desired["env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS"],
      },
    },
    null,
    2,
  ) + "\n";
}

/**
 * Merges `desired` into a settings text (`null`: the file does not exist; blank: treated the
 * same). Pure. Every other byte is kept; throws {@linkcode ConfigError} naming `path` and the
 * line for comments, invalid JSON, a non-object top level or `env`, or a duplicated key.
 */
export function mergeSettingsText(
  text: string | null,
  desired: DesiredSettings,
  path: string,
): MergePlan {
  if (text === null || text.trim() === "") {
    return {
      text: freshSettings(desired),
      changes: SETUP_KEYS.map((key) => ({
        key,
        kind: "added",
        after: JSON.stringify(desired[key]),
      })),
      createdEnv: true,
    };
  }
  const root = parseSettings(text, path);
  const style = detectStyle(text, root);
  refuseDuplicates(text, root, path);
  const expected = plainValue(text, path);
  let out = text;
  let createdEnv = false;
  const changes: Change[] = [];
  for (const key of SETUP_KEYS) {
    const valueText = JSON.stringify(desired[key]);
    const { inEnv, name } = splitKey(key);
    const here = locate(out, key, path);
    if (here.member) {
      const value = valueOf(here.member);
      if (holds(value, desired[key])) continue;
      const current = textOf(out, value);
      out = applyEdits(out, setValue(out, pathOf(key), desired[key]));
      changes.push({ key, kind: "changed", before: current, after: valueText });
    } else if (here.obj) {
      out = applyEdits(out, [insertMember(out, here.obj, name, valueText, style)]);
      changes.push({ key, kind: "added", after: valueText });
    } else {
      // `env` is missing: add it empty, then fill it like an existing one.
      out = applyEdits(out, [insertMember(out, here.root, "env", "{}", style)]);
      createdEnv = true;
      const again = locate(out, key, path);
      out = applyEdits(out, [insertMember(out, again.obj!, name, valueText, style)]);
      changes.push({ key, kind: "added", after: valueText });
    }
    if (inEnv) {
      const env = (expected.env ??= {}) as Record<string, unknown>;
      env[name] = desired[key];
    } else expected[name] = desired[key];
  }
  assertMeans(out, expected, path);
  return { text: out, changes, createdEnv };
}

function refuseDuplicates(text: string, root: Node, path: string): void {
  const check = (obj: Node, name: string, label: string) => {
    const found = membersNamed(obj, name);
    if (found.length > 1) {
      throw new ConfigError(
        `${path}:${
          lineOf(text, found[1].offset)
        }: "${label}" appears more than once; remove one (the file was not changed)`,
      );
    }
  };
  check(root, "apiKeyHelper", "apiKeyHelper");
  check(root, "env", "env");
  const env = envObject(text, root, path);
  if (env) {
    for (const key of SETUP_KEYS) {
      const { inEnv, name } = splitKey(key);
      if (inEnv) check(env, name, key);
    }
  }
}

/** Guard: the edited text must parse to exactly the intended object. */
function assertMeans(text: string, expected: unknown, path: string): void {
  let actual: unknown;
  try {
    actual = parseJson(text);
  } catch {
    actual = Symbol("unparsable");
  }
  if (!deepEqual(actual, expected)) {
    throw new Error(`Internal error: the edit of ${path} did not produce the intended settings`);
  }
}

/**
 * What Claude Code will read from a text jsonc-parser accepted. They agree on RFC 8259; should
 * they ever differ, the file is refused rather than edited on the parser's word alone.
 */
function plainValue(text: string, path: string): Record<string, unknown> {
  try {
    return parseJson(text) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(
      `${path}: not plain JSON (${errorText(error)}); the file was not changed`,
    );
  }
}

/** `JSON.parse`, tolerating the BOM some Windows editors write (the scanner allows it too). */
function parseJson(text: string): unknown {
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    Object.hasOwn(b, k) &&
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

// ---------------------------------------------------------------------------------------------
// The undo record

/** What setup did to one settings file. */
export interface SetupRecord {
  /** When setup last changed the file (ISO 8601). */
  at: string;
  /** The file did not exist before setup. */
  created_file: boolean;
  /** Setup added the `env` object. */
  created_env: boolean;
  /** Per key: raw JSON text of the value replaced (absent: setup added the key), and ours. */
  keys: Partial<Record<SetupKey, { before?: string; after: string }>>;
  /**
   * Exact restore: when the file's SHA-256 still equals `after_sha256`, undo writes the backup
   * back (or deletes the file setup created). `null` once the file changed between two setups.
   */
  restore: { backup: string | null; before_sha256: string | null; after_sha256: string } | null;
}

/** The sidecar: one record per settings file, by absolute path. */
export interface SetupRecords {
  version: 1;
  files: Record<string, SetupRecord>;
}

/** Reads the sidecar; a missing file is empty, a broken one a ConfigError naming it. */
export function loadRecords(recordPath: string): SetupRecords {
  let text: string;
  try {
    text = Deno.readTextFileSync(recordPath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { version: 1, files: {} };
    throw new ConfigError(`Cannot read ${recordPath}: ${errorText(error)}`);
  }
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    throw new ConfigError(
      `${recordPath}: invalid JSON; fix or delete it (it only records what \`setup claude\` changed, for --undo)`,
    );
  }
  const v = value as SetupRecords;
  if (typeof v !== "object" || v === null || v.version !== 1 || typeof v.files !== "object") {
    throw new ConfigError(`${recordPath}: not a setup record (version 1 expected)`);
  }
  return v;
}

async function saveRecords(recordPath: string, records: SetupRecords): Promise<void> {
  await ensurePrivateDir(dirname(recordPath));
  if (Object.keys(records.files).length === 0) {
    await Deno.remove(recordPath).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    return;
  }
  await writeFileAtomic(recordPath, JSON.stringify(records, null, 2) + "\n");
}

/** Folds a new merge into the record of earlier setups, so undo still returns to the start. */
export function nextRecord(
  previous: SetupRecord | undefined,
  plan: MergePlan,
  info: {
    createdFile: boolean;
    backup: string | null;
    beforeSha: string | null;
    afterSha: string;
    at: string;
    currentSha: string | null;
  },
): SetupRecord {
  const keys: SetupRecord["keys"] = { ...(previous?.keys ?? {}) };
  for (const c of plan.changes) {
    const old = keys[c.key];
    keys[c.key] = old
      ? { ...old, after: c.after! }
      : c.before === undefined
      ? { after: c.after! }
      : { before: c.before, after: c.after! };
  }
  let restore: SetupRecord["restore"];
  if (!previous) {
    restore = { backup: info.backup, before_sha256: info.beforeSha, after_sha256: info.afterSha };
  } else if (previous.restore && previous.restore.after_sha256 === info.currentSha) {
    restore = { ...previous.restore, after_sha256: info.afterSha };
  } else {
    restore = null; // the user edited the file in between: only a key-by-key undo is right
  }
  return {
    at: info.at,
    created_file: previous ? previous.created_file : info.createdFile,
    created_env: (previous?.created_env ?? false) || plan.createdEnv,
    keys,
    restore,
  };
}

// ---------------------------------------------------------------------------------------------
// Undo (pure part)

/** Result of a key-by-key undo. */
export interface UndoPlan {
  text: string;
  changes: Change[];
  /** One line each: keys the user changed since setup, left alone. */
  warnings: string[];
}

/**
 * Undoes `record` on the current text key by key. Pure. Keys still holding the value setup
 * wrote are removed (setup added them) or get their previous text back; others are left.
 */
export function undoSettingsText(text: string, record: SetupRecord, path: string): UndoPlan {
  let out = text;
  const changes: Change[] = [];
  const warnings: string[] = [];
  for (const key of [...SETUP_KEYS].reverse()) {
    const entry = record.keys[key];
    if (!entry) continue;
    const { member, obj } = locate(out, key, path);
    if (!member) {
      if (entry.before !== undefined) {
        warnings.push(`${key} was removed since setup; not restoring ${display(entry.before)}`);
      }
      continue;
    }
    const value = valueOf(member);
    const current = textOf(out, value);
    if (!holds(value, JSON.parse(entry.after))) {
      warnings.push(`${key} was changed since setup (now ${display(current)}); left as it is`);
      continue;
    }
    if (entry.before === undefined) {
      out = applyEdits(out, removeMember(out, obj!, obj!.children!.indexOf(member), pathOf(key)));
      changes.push({ key, kind: "removed", before: current });
    } else {
      out = applyEdits(out, [replaceValue(member, entry.before)]);
      changes.push({ key, kind: "changed", before: current, after: entry.before });
    }
  }
  if (record.created_env) {
    const root = parseSettings(out, path);
    const list = root.children ?? [];
    const index = list.findIndex((m) => keyOf(m) === "env");
    const env = index < 0 ? undefined : valueOf(list[index]);
    if (env && env.type === "object" && (env.children ?? []).length === 0) {
      out = applyEdits(out, removeMember(out, root, index, ["env"]));
    }
  }
  changes.reverse();
  return { text: out, changes, warnings };
}

// ---------------------------------------------------------------------------------------------
// The I/O around it

/** What {@linkcode applyClaudeSetup} did. */
export interface SetupResult {
  /** The settings file (absolute, as given). */
  path: string;
  changes: Change[];
  /** Backup of the previous content, `null` when nothing was written or the file was new. */
  backup: string | null;
  /** The file did not exist and was created. */
  created: boolean;
}

/** Options for {@linkcode applyClaudeSetup} and {@linkcode undoClaudeSetup}. */
export interface SetupFiles {
  /** Claude Code settings file to edit. */
  settingsPath: string;
  /** The sidecar (`<config dir>/claude-setup.json`). */
  recordPath: string;
  /** Clock, for the backup name and the record. */
  now?: Date;
}

/**
 * Merges `desired` into the settings file: backup, atomic write keeping the file's mode (0600
 * for a new file, parent directory created 0700), undo record. Nothing is written when the
 * file is already configured. Needs `--allow-read --allow-write`.
 */
export async function applyClaudeSetup(
  files: SetupFiles,
  desired: DesiredSettings,
): Promise<SetupResult> {
  const path = absolute(files.settingsPath);
  const now = files.now ?? new Date();
  const target = await writeTarget(path);
  const bytes = await readBytes(target, path);
  const text = bytes === null ? null : decodeUtf8(bytes, path);
  const plan = mergeSettingsText(text, desired, path);
  if (plan.changes.length === 0) return { path, changes: [], backup: null, created: false };

  const records = loadRecords(files.recordPath); // a broken sidecar stops us before any write
  const newBytes = new TextEncoder().encode(plan.text);
  const backup = bytes === null ? null : await writeBackup(target, bytes, now);
  const currentSha = bytes === null ? null : await sha256(bytes);
  const before = structuredClone(records);
  records.files[path] = nextRecord(records.files[path], plan, {
    createdFile: bytes === null,
    backup,
    beforeSha: currentSha,
    afterSha: await sha256(newBytes),
    currentSha,
    at: now.toISOString(),
  });
  // The record first: if the settings write then fails, undo finds our values absent and
  // leaves the file alone, whereas the other order could leave a change undo cannot see.
  await saveRecords(files.recordPath, records);
  try {
    if (bytes === null) await ensurePrivateDir(dirname(target));
    await writeAtomicKeepingMode(target, newBytes, bytes === null ? 0o600 : null);
  } catch (error) {
    await saveRecords(files.recordPath, before).catch(() => {});
    throw new ConfigError(`Cannot write ${path}: ${errorText(error)}`, { cause: error });
  }
  return { path, changes: plan.changes, backup, created: bytes === null };
}

/** What {@linkcode undoClaudeSetup} did. */
export interface UndoResult {
  path: string;
  /** `nothing`: no record for this file; `restored`: exact backup; `reverted`: key by key. */
  outcome: "nothing" | "restored" | "reverted" | "deleted" | "unchanged";
  changes: Change[];
  warnings: string[];
  /** Backup of the content before the undo, when the undo wrote the file. */
  backup: string | null;
}

/**
 * Undoes what setup recorded for the settings file and drops the record.
 * Needs `--allow-read --allow-write`.
 */
export async function undoClaudeSetup(files: SetupFiles): Promise<UndoResult> {
  const path = absolute(files.settingsPath);
  const now = files.now ?? new Date();
  const records = loadRecords(files.recordPath);
  const record = records.files[path];
  const result: UndoResult = { path, outcome: "nothing", changes: [], warnings: [], backup: null };
  if (!record) return result;

  const target = await writeTarget(path);
  const bytes = await readBytes(target, path);
  const recorded = recordedChanges(record);
  const drop = async () => {
    delete records.files[path];
    await saveRecords(files.recordPath, records);
  };

  if (bytes === null) {
    if (!record.created_file) {
      result.warnings.push(
        `${path} no longer exists; nothing to undo${
          record.restore?.backup ? ` (the original is in ${record.restore.backup})` : ""
        }`,
      );
    }
    await drop();
    result.outcome = "unchanged";
    return result;
  }

  const currentSha = await sha256(bytes);
  if (record.restore && record.restore.after_sha256 === currentSha) {
    if (record.created_file) {
      await Deno.remove(target);
      await drop();
      return { ...result, outcome: "deleted", changes: recorded };
    }
    const original = record.restore.backup
      ? await readBytes(record.restore.backup, record.restore.backup).catch(() => null)
      : null;
    if (original && (await sha256(original)) === record.restore.before_sha256) {
      await writeAtomicKeepingMode(target, original, null);
      await drop();
      return { ...result, outcome: "restored", changes: recorded };
    }
  }

  const text = decodeUtf8(bytes, path);
  const plan = undoSettingsText(text, record, path);
  result.warnings.push(...plan.warnings);
  result.changes = plan.changes;
  if (plan.text === text) {
    await drop();
    result.outcome = "unchanged";
    return result;
  }
  if (record.created_file && isEmptyObject(plan.text)) {
    await Deno.remove(target);
    await drop();
    result.outcome = "deleted";
    return result;
  }
  result.backup = await writeBackup(target, bytes, now);
  await writeAtomicKeepingMode(target, new TextEncoder().encode(plan.text), null);
  await drop();
  result.outcome = "reverted";
  return result;
}

/** The changes an exact restore undoes, for the report. */
function recordedChanges(record: SetupRecord): Change[] {
  return SETUP_KEYS.flatMap((key): Change[] => {
    const e = record.keys[key];
    if (!e) return [];
    return e.before === undefined
      ? [{ key, kind: "removed", before: e.after }]
      : [{ key, kind: "changed", before: e.after, after: e.before }];
  });
}

function isEmptyObject(text: string): boolean {
  try {
    const v = parseJson(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  } catch {
    return false;
  }
}

/** One line per change: `+ key: "new"`, `~ key: "old" -> "new"`, `- key: "old"`. */
export function formatChange(change: Change): string {
  if (change.kind === "added") return `+ ${change.key}: ${display(change.after!)}`;
  if (change.kind === "removed") return `- ${change.key}: ${display(change.before!)}`;
  return `~ ${change.key}: ${display(change.before!)} -> ${display(change.after!)}`;
}

/**
 * A value for the terminal: long token-like runs masked (an old `apiKeyHelper` may be
 * `echo sk-ant-…`; SPEC.md §7: no secret in output), long values shortened.
 */
export function display(rawJson: string): string {
  let shown = rawJson;
  try {
    const v = JSON.parse(rawJson);
    shown = typeof v === "string" ? JSON.stringify(redact(v)) : JSON.stringify(v);
  } catch {
    // not JSON: show the raw text, masked
  }
  shown = redact(shown);
  return shown.length > 120 ? shown.slice(0, 117) + "…" : shown;
}

function redact(s: string): string {
  return s.replace(/[A-Za-z0-9_\-+=]{24,}/g, (run) => `${run.slice(0, 4)}…(redacted)`);
}

// ---------------------------------------------------------------------------------------------
// Files

/** Where Claude Code keeps user settings: `$CLAUDE_CONFIG_DIR` or `~/.claude` (research A.2). */
export function claudeUserSettingsPath(
  env: { get(name: string): string | undefined } = Deno.env,
  os: typeof Deno.build.os = Deno.build.os,
): string {
  const sep = os === "windows" ? "\\" : "/";
  const dir = env.get("CLAUDE_CONFIG_DIR");
  if (dir) return `${dir.replace(/[\\/]+$/, "")}${sep}settings.json`;
  const home = env.get("HOME") || (os === "windows" ? env.get("USERPROFILE") : undefined);
  if (!home) {
    throw new ConfigError("Cannot find ~/.claude/settings.json: HOME is not set");
  }
  return `${home}${sep}.claude${sep}settings.json`;
}

/** `./.claude/settings.json` of the project in `cwd`. */
export function claudeProjectSettingsPath(
  cwd: string = Deno.cwd(),
  os: typeof Deno.build.os = Deno.build.os,
): string {
  const sep = os === "windows" ? "\\" : "/";
  return `${cwd.replace(/[\\/]+$/, "")}${sep}.claude${sep}settings.json`;
}

/**
 * Every settings file Claude Code reads, in increasing precedence (later wins, key by key):
 * user, project, project-local, managed (code.claude.com/docs/en/settings). `--settings` on
 * Claude's command line sits between local and managed and cannot be seen from here.
 */
export function claudeSettingsPaths(
  opts: {
    env?: { get(name: string): string | undefined };
    cwd?: string;
    os?: typeof Deno.build.os;
  } = {},
): { scope: "user" | "project" | "local" | "managed"; path: string }[] {
  const os = opts.os ?? Deno.build.os;
  const cwd = opts.cwd ?? Deno.cwd();
  const project = claudeProjectSettingsPath(cwd, os);
  const out: { scope: "user" | "project" | "local" | "managed"; path: string }[] = [];
  try {
    out.push({ scope: "user", path: claudeUserSettingsPath(opts.env ?? Deno.env, os) });
  } catch {
    // no HOME: no user settings to look at
  }
  out.push({ scope: "project", path: project });
  out.push({ scope: "local", path: project.replace(/settings\.json$/, "settings.local.json") });
  const managed = os === "darwin"
    ? ["/Library/Application Support/ClaudeCode/managed-settings.json"]
    : os === "windows"
    ? [
      "C:\\ProgramData\\ClaudeCode\\managed-settings.json", // older releases
      "C:\\Program Files\\ClaudeCode\\managed-settings.json",
    ]
    : ["/etc/claude-code/managed-settings.json"];
  for (const path of managed) out.push({ scope: "managed", path });
  return out;
}

function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i <= 0 ? (i === 0 ? path.slice(0, 1) : ".") : path.slice(0, i);
}

function absolute(path: string): string {
  if (/^([A-Za-z]:)?[\\/]/.test(path)) return path;
  return `${Deno.cwd().replace(/[\\/]+$/, "")}/${path.replace(/^\.\//, "")}`;
}

/**
 * The file to write: a symlinked settings file (dotfile managers link `~/.claude/settings.json`
 * into a repository) is edited at its target, so the link survives the rename.
 */
async function writeTarget(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path;
  }
}

async function readBytes(file: string, shown: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new ConfigError(`Cannot read ${shown}: ${errorText(error)}`);
  }
}

function decodeUtf8(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new ConfigError(`${path}: not UTF-8 text; the file was not changed`);
  }
}

/** `<file>.bak-YYYYMMDDTHHMMSSZ` (a `-2`… suffix if that second is taken), 0600. */
async function writeBackup(file: string, bytes: Uint8Array, now: Date): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  for (let n = 1;; n++) {
    const name = `${file}.bak-${stamp}${n === 1 ? "" : `-${n}`}`;
    let handle: Deno.FsFile;
    try {
      handle = await Deno.open(name, { write: true, createNew: true, mode: 0o600 });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists && n < 100) continue;
      throw new ConfigError(`Cannot write the backup ${name}: ${errorText(error)}`);
    }
    try {
      let off = 0;
      while (off < bytes.length) off += await handle.write(bytes.subarray(off));
      await handle.sync();
    } finally {
      handle.close();
    }
    return name;
  }
}

/**
 * temp + fsync + rename, with the file's current mode kept (`newMode` for a file that does
 * not exist yet). The temp file is created 0600 and given the old mode before the rename,
 * so the settings file never changes permissions and is never readable half-written.
 */
async function writeAtomicKeepingMode(
  file: string,
  bytes: Uint8Array,
  newMode: number | null,
): Promise<void> {
  let mode = newMode;
  if (mode === null) {
    try {
      mode = (await Deno.stat(file)).mode;
    } catch {
      mode = 0o600;
    }
  }
  await writeFileAtomic(file, bytes, mode ?? 0o600);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, " ");
}

// ---------------------------------------------------------------------------------------------
// Inspection for `doctor` (pure core plus a reader)

/** One `doctor` line. */
export interface Finding {
  ok: boolean;
  check: string;
  detail: string;
  fix?: string;
}

/** What the settings should say. */
export interface ClaudeExpectation {
  /** The config's `tenant_url`; `null` when there is no usable config (nothing to compare). */
  tenantUrl: string | null;
  /** The config's `anthropic_base_url`, which replaces `<tenant_url>/anthropic/v1`. */
  baseUrl?: string;
  /** Profile the helper should use (default profile when absent). */
  profile?: string;
  /** Access-token lifetime for the TTL check (Cognito's default: 1 h); unknown when absent. */
  lifetimeMs?: number | null;
}

/** A settings file's text, `null` when it does not exist. */
export interface SettingsSource {
  path: string;
  text: string | null;
}

/** A value and the file it came from. */
interface Sourced<T> {
  value: T;
  path: string;
}

const PROVIDER_VARS = [
  "CLAUDE_CODE_USE_BEDROCK",
  "CLAUDE_CODE_USE_VERTEX",
  "CLAUDE_CODE_USE_FOUNDRY",
];

/**
 * Findings about Claude Code's settings as Claude would merge them: `sources` in increasing
 * precedence (as {@linkcode claudeSettingsPaths} returns them), later files winning key by
 * key, `env` merged per variable. Pure. Values of credentials are never put in a finding.
 */
export function inspectClaudeSettingsSources(
  sources: SettingsSource[],
  expected: ClaudeExpectation,
): Finding[] {
  const findings: Finding[] = [];
  let helper: Sourced<unknown> | undefined;
  const env = new Map<string, Sourced<unknown>>();
  const credentials = new Map<string, string[]>();
  let forcedLogin: Sourced<unknown> | undefined;
  const read: string[] = [];

  for (const source of sources) {
    if (source.text === null) continue;
    let obj: Record<string, unknown>;
    try {
      parseSettings(source.text, source.path);
      obj = parseJson(source.text) as Record<string, unknown>;
    } catch (error) {
      findings.push({
        ok: false,
        check: "claude settings file",
        detail: error instanceof Error
          ? error.message.replace(/; the file was not changed$/, "")
          : String(error),
        fix: `Fix ${source.path}: Claude Code cannot use a settings file that is not plain JSON`,
      });
      continue;
    }
    read.push(source.path);
    if (Object.hasOwn(obj, "apiKeyHelper")) helper = { value: obj.apiKeyHelper, path: source.path };
    if (Object.hasOwn(obj, "forceLoginMethod")) {
      forcedLogin = { value: obj.forceLoginMethod, path: source.path };
    }
    const block = obj.env;
    if (typeof block === "object" && block !== null && !Array.isArray(block)) {
      for (const [name, value] of Object.entries(block)) {
        env.set(name, { value, path: source.path });
        if (name === "ANTHROPIC_API_KEY" || name === "ANTHROPIC_AUTH_TOKEN") {
          credentials.set(name, [...(credentials.get(name) ?? []), source.path]);
        }
      }
    } else if (block !== undefined) {
      findings.push({
        ok: false,
        check: "claude settings file",
        detail: `${source.path}: "env" is not an object`,
        fix: `Make "env" an object of strings in ${source.path}`,
      });
    }
  }
  const where = read.length ? read.join(", ") : "no Claude Code settings file";

  findings.push(helperFinding(helper, expected, env.get("AGENT_RUNNER_PROFILE"), where));
  findings.push(baseUrlFinding(env.get("ANTHROPIC_BASE_URL"), expected, where));
  findings.push(ttlFinding(env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"), expected));
  for (const name of ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]) {
    const files = credentials.get(name);
    findings.push(
      files
        ? {
          ok: false,
          check: `claude env ${name}`,
          detail: `set in ${files.join(", ")}: Claude Code uses it instead of apiKeyHelper`,
          fix: `Remove env.${name} from ${files.join(" and ")}`,
        }
        : { ok: true, check: `claude env ${name}`, detail: "not set in Claude Code settings" },
    );
  }
  for (const name of PROVIDER_VARS) {
    const v = env.get(name);
    if (v && v.value !== "" && v.value !== "0" && v.value !== "false") {
      findings.push({
        ok: false,
        check: `claude env ${name}`,
        detail: `set in ${v.path}: a cloud provider outranks apiKeyHelper`,
        fix: `Remove env.${name} from ${v.path}`,
      });
    }
  }
  if (forcedLogin) {
    findings.push({
      ok: false,
      check: "claude forceLoginMethod",
      detail: `set in ${forcedLogin.path}: Claude Code then refuses apiKeyHelper at start-up`,
      fix: `Ask whoever manages ${forcedLogin.path} to drop forceLoginMethod`,
    });
  }
  return findings;
}

/** Whether `command` runs this program's `token` verb, and with which profile. */
export function parseHelperCommand(
  command: string,
): { ours: boolean; profile?: string; why?: string } {
  const m = /^\s*(?:"([^"]+)"|'([^']+)'|(\S+))\s+token(?:\s+(.*?))?\s*$/.exec(command);
  if (!m) return { ours: false, why: "does not run `agent-runner-auth token`" };
  const bin = m[1] ?? m[2] ?? m[3];
  if (!/(^|[\\/])agent-runner-auth(\.exe)?$/i.test(bin)) {
    return { ours: false, why: "does not run `agent-runner-auth token`" };
  }
  const rest = (m[4] ?? "").trim();
  if (rest === "") return { ours: true };
  const p = /^--profile(?:\s+|=)([a-z0-9][a-z0-9_-]*)$/.exec(rest);
  if (!p) return { ours: false, why: `unexpected arguments "${rest}"` };
  return { ours: true, profile: p[1] };
}

function helperFinding(
  helper: Sourced<unknown> | undefined,
  expected: ClaudeExpectation,
  envProfile: Sourced<unknown> | undefined,
  where: string,
): Finding {
  const check = "claude apiKeyHelper";
  const fix = `Run \`agent-runner-auth setup claude${
    expected.profile && expected.profile !== DEFAULT_PROFILE ? ` --profile ${expected.profile}` : ""
  }\``;
  if (!helper) return { ok: false, check, detail: `not set (${where})`, fix };
  if (typeof helper.value !== "string") {
    return { ok: false, check, detail: `not a string in ${helper.path}`, fix };
  }
  const parsed = parseHelperCommand(helper.value);
  if (!parsed.ours) {
    return {
      ok: false,
      check,
      detail: `${display(JSON.stringify(helper.value))} in ${helper.path} ${parsed.why}`,
      fix,
    };
  }
  const actual = parsed.profile ??
    (typeof envProfile?.value === "string" && envProfile.value
      ? envProfile.value
      : DEFAULT_PROFILE);
  const wanted = expected.profile ?? DEFAULT_PROFILE;
  if (actual !== wanted) {
    return {
      ok: false,
      check,
      detail: `${
        JSON.stringify(helper.value)
      } in ${helper.path} uses profile "${actual}", not "${wanted}"`,
      fix,
    };
  }
  return { ok: true, check, detail: `${JSON.stringify(helper.value)} in ${helper.path}` };
}

function baseUrlFinding(
  found: Sourced<unknown> | undefined,
  expected: ClaudeExpectation,
  where: string,
): Finding {
  const check = "claude ANTHROPIC_BASE_URL";
  const fix = "Run `agent-runner-auth setup claude`";
  if (expected.tenantUrl === null) {
    return found
      ? {
        ok: true,
        check,
        detail: `${
          display(JSON.stringify(found.value))
        } in ${found.path} (no tenant_url in the config to compare with)`,
      }
      : { ok: false, check, detail: `not set in env (${where})`, fix };
  }
  const want = expected.baseUrl ?? anthropicBaseUrl(expected.tenantUrl);
  if (!found) {
    return { ok: false, check, detail: `not set in env (${where}); expected "${want}"`, fix };
  }
  const norm = (s: string) => s.trim().replace(/\/+$/, "");
  if (typeof found.value !== "string" || norm(found.value) !== norm(want)) {
    return {
      ok: false,
      check,
      detail: `${display(JSON.stringify(found.value))} in ${found.path}; expected "${want}"`,
      fix,
    };
  }
  return { ok: true, check, detail: `"${found.value}" in ${found.path}` };
}

function ttlFinding(found: Sourced<unknown> | undefined, expected: ClaudeExpectation): Finding {
  const check = "claude CLAUDE_CODE_API_KEY_HELPER_TTL_MS";
  const lifetime = expected.lifetimeMs ?? undefined;
  const margin = DEFAULT_POLICY.marginMs;
  const suggested = lifetime === undefined
    ? HELPER_TTL_MS
    : String(lifetime > 10 * 60_000 ? lifetime - 5 * 60_000 : Math.floor(lifetime / 2));
  const fix = `Set env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS to "${suggested}"`;
  if (!found) {
    return {
      ok: true,
      check,
      detail: `not set: Claude Code re-runs the helper every ${
        CLAUDE_DEFAULT_TTL_MS / 60_000
      } minutes (works; "${suggested}" runs it less often)`,
    };
  }
  const raw = found.value;
  const n = typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (typeof raw !== "string") {
    return {
      ok: false,
      check,
      detail: `${JSON.stringify(raw)} in ${found.path} is not a string`,
      fix,
    };
  }
  if (!Number.isSafeInteger(n)) {
    return {
      ok: false,
      check,
      detail: `${JSON.stringify(raw)} in ${found.path} is not a whole number of milliseconds`,
      fix,
    };
  }
  const minutes = (ms: number) => `${Math.round(ms / 6_000) / 10} min`;
  if (lifetime !== undefined && n + margin > lifetime) {
    return {
      ok: false,
      check,
      detail: `${n} ms (${minutes(n)}) in ${found.path} is not below the access-token lifetime (${
        minutes(lifetime)
      }) minus ${minutes(margin)}: Claude Code would keep sending a token after it expires`,
      fix,
    };
  }
  const note = n === 0 ? "; 0 runs the helper before every request" : "";
  return {
    ok: true,
    check,
    detail: `${n} ms (${minutes(n)}) in ${found.path}${
      lifetime !== undefined ? `, below the ${minutes(lifetime)} token lifetime` : ""
    }${note}`,
  };
}

/**
 * Reads `paths` (missing files skipped, unreadable ones reported) and inspects them; see
 * {@linkcode inspectClaudeSettingsSources}. Needs `--allow-read`.
 */
export function inspectClaudeSettings(paths: string[], expected: ClaudeExpectation): Finding[] {
  const sources: SettingsSource[] = [];
  const unreadable: Finding[] = [];
  for (const path of paths) {
    try {
      sources.push({ path, text: Deno.readTextFileSync(path) });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      unreadable.push({
        ok: false,
        check: "claude settings file",
        detail: `Cannot read ${path}: ${errorText(error)}`,
        fix: `Check the permissions of ${path}`,
      });
    }
  }
  return [...unreadable, ...inspectClaudeSettingsSources(sources, expected)];
}
