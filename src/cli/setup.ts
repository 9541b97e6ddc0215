/**
 * `agent-runner-auth setup claude [--undo] [--project]`: point Claude Code at this tenant and at
 * `agent-runner-auth token` (SPEC.md §2, issue 4). The merge itself, with its backup and undo
 * record, is `src/claude/settings.ts`; this file parses flags, finds the files and reports.
 *
 * The user file (`~/.claude/settings.json`, or `$CLAUDE_CONFIG_DIR/settings.json` which Claude
 * Code reads instead when set) is the default: project settings apply only once the folder is
 * trusted and are usually committed for the whole team (research A.1).
 *
 * @module
 */

import { baseUrlProblem, requireConfig } from "../config/config.ts";
import { resolvePaths } from "../config/paths.ts";
import { selectProfile } from "../config/profile.ts";
import { UsageError } from "../errors.ts";
import type { Verb } from "./verb.ts";
import { stderrLine, stderrText } from "./output.ts";

/** What can be set up; `claude` is the only target today. */
export const SETUP_TARGETS: readonly string[] = ["claude"];

/**
 * The `setup` verb. `subcommands` is the proposed `Verb` field through which dispatch passes
 * the one positional (`claude`) as `values.subcommand`; see {@linkcode parseSetupOptions}.
 */
export const setupVerb: Verb & { subcommands: readonly string[] } = {
  name: "setup",
  summary:
    "agent-runner-auth setup claude: point Claude Code at your tenant and at agent-runner-auth token",
  usage:
    `Usage: agent-runner-auth setup claude [--project] [--profile NAME] [--base-url URL] [--undo]

Merges three keys into ~/.claude/settings.json ($CLAUDE_CONFIG_DIR/settings.json when set):
  apiKeyHelper                           "agent-runner-auth token" (plus --profile NAME)
  env.ANTHROPIC_BASE_URL                 "<tenant_url>/anthropic/v1", tenant_url from the config
                                         (or --base-url, or the config's anthropic_base_url)
  env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS  "3300000" (55 minutes, under the 1-hour access token)
Every other key and the file's layout stay as they are. The previous file is saved beside it
as settings.json.bak-<UTC time>. A file with comments or invalid JSON is refused, untouched.

Flags:
  --project       Write ./.claude/settings.json of the current folder instead. Claude Code
                  applies it only after you trust the folder, and it is usually committed
  --profile NAME  Use profile NAME's tenant; the helper then runs \`token --profile NAME\`
  --base-url URL  ANTHROPIC_BASE_URL to write instead of <tenant_url>/anthropic/v1, when your
                  tenant's proxy serves the Messages API elsewhere; Claude Code appends
                  /v1/messages to it (https; http only for loopback). \`doctor\` shows the result
  --undo          Take out what setup put in: keys it added are removed, values it replaced
                  come back; keys you changed since are left alone (with a warning)

Examples:
  agent-runner-auth setup claude
  agent-runner-auth setup claude --profile work
  agent-runner-auth setup claude --base-url https://acme.proxy.example.com/anthropic
  agent-runner-auth setup claude --project
  agent-runner-auth setup claude --undo`,
  options: {
    undo: { type: "boolean" },
    project: { type: "boolean" },
    "base-url": { type: "string" },
  },
  subcommands: SETUP_TARGETS,
  run: (values) => runSetup(values),
};

/** Parsed flags of `setup`. */
export interface SetupOptions {
  target: "claude";
  undo: boolean;
  project: boolean;
  /** `--profile` as given (`AGENT_RUNNER_PROFILE` is applied later by `selectProfile`). */
  profile: string | undefined;
  /** `--base-url`, validated. */
  baseUrl: string | undefined;
}

/** The flags as an options object; a missing or unknown target is a usage error. */
export function parseSetupOptions(
  values: Record<string, string | boolean | undefined>,
): SetupOptions {
  const target = values.subcommand;
  if (target === undefined || target === true || target === false) {
    throw new UsageError(
      "setup: say what to set up: `agent-runner-auth setup claude` (see setup --help)",
    );
  }
  if (!SETUP_TARGETS.includes(target)) {
    throw new UsageError(
      `setup: unknown target "${target}"; try \`agent-runner-auth setup claude\``,
    );
  }
  const baseUrl = typeof values["base-url"] === "string" ? values["base-url"].trim() : undefined;
  if (baseUrl !== undefined) {
    const problem = baseUrlProblem(baseUrl);
    if (problem) throw new UsageError(`setup: --base-url ${problem}`);
    if (values.undo === true) {
      throw new UsageError("setup: --base-url cannot be combined with --undo");
    }
  }
  return {
    target: "claude",
    undo: values.undo === true,
    project: values.project === true,
    profile: typeof values.profile === "string" ? values.profile : undefined,
    baseUrl,
  };
}

async function runSetup(values: Record<string, string | boolean | undefined>): Promise<number> {
  const options = parseSetupOptions(values);
  const settings = await import("../claude/settings.ts");
  const paths = resolvePaths();
  const sep = Deno.build.os === "windows" ? "\\" : "/";
  const files = {
    settingsPath: options.project
      ? settings.claudeProjectSettingsPath()
      : settings.claudeUserSettingsPath(),
    recordPath: `${paths.dir}${sep}claude-setup.json`,
  };
  const shown = tildify(files.settingsPath);

  if (options.undo) {
    const r = await settings.undoClaudeSetup(files);
    for (const w of r.warnings) stderrLine(`warning: ${w}`);
    switch (r.outcome) {
      case "nothing":
        stderrLine(`Nothing to undo: setup claude has not changed ${shown}`);
        break;
      case "unchanged":
        stderrLine(`Nothing left to undo in ${shown}`);
        break;
      case "deleted":
        stderrLine(`Removed ${shown}, which setup had created:`);
        break;
      case "restored":
        stderrLine(`Restored ${shown} to what it was before setup:`);
        break;
      case "reverted":
        stderrLine(
          `Took setup's keys out of ${shown} (previous version saved as ${
            tildify(r.backup ?? "")
          }):`,
        );
        break;
    }
    printChanges(r.changes.map(settings.formatChange));
    return 0;
  }

  const profile = selectProfile(options.profile);
  const loaded = requireConfig(paths.config, profile);
  const desired = settings.desiredSettings(loaded.config.tenant_url, profile);
  const baseUrl = options.baseUrl ?? loaded.config.anthropic_base_url;
  if (baseUrl !== undefined) desired["env.ANTHROPIC_BASE_URL"] = baseUrl;
  const r = await settings.applyClaudeSetup(files, desired);
  if (r.changes.length === 0) {
    stderrLine(`${shown} already points Claude Code at agent-runner-auth; nothing to change`);
  } else {
    stderrLine(
      r.created
        ? `Created ${shown}:`
        : `Updated ${shown} (previous version saved as ${tildify(r.backup ?? "")}):`,
    );
    printChanges(r.changes.map(settings.formatChange));
  }
  for (const w of warnings(settings, files.settingsPath, desired, loaded.config.tenant_url)) {
    stderrLine(`warning: ${w}`);
  }
  if (options.project) {
    stderrLine(
      "Project settings apply once you trust this folder in Claude Code; for yourself alone, prefer `agent-runner-auth setup claude` (user settings)",
    );
  }
  if (r.changes.length > 0) {
    stderrLine(
      `New Claude Code sessions use it; undo with \`agent-runner-auth setup claude${
        options.project ? " --project" : ""
      } --undo\``,
    );
  }
  return 0;
}

function printChanges(lines: string[]): void {
  if (lines.length) stderrText(lines.map((l) => `  ${l}`).join("\n"));
}

/**
 * What would still stop Claude Code from using the helper after a successful setup: a
 * credential that outranks it (research A.5), or a command `/bin/sh` cannot find.
 */
function warnings(
  settings: typeof import("../claude/settings.ts"),
  settingsPath: string,
  desired: { apiKeyHelper: string },
  tenantUrl: string,
): string[] {
  const out: string[] = [];
  for (const name of ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"]) {
    if (Deno.env.get(name)) {
      out.push(
        `${name} is set in this shell; Claude Code uses it instead of apiKeyHelper: \`unset ${name}\` (and remove it from your shell profile)`,
      );
    }
  }
  const findings = settings.inspectClaudeSettings([settingsPath], { tenantUrl });
  for (const f of findings) {
    if (!f.ok && /ANTHROPIC_(API_KEY|AUTH_TOKEN)|CLAUDE_CODE_USE_|forceLoginMethod/.test(f.check)) {
      out.push(`${f.detail}${f.fix ? `; ${f.fix}` : ""}`);
    }
  }
  if (desired.apiKeyHelper.startsWith("agent-runner-auth ") && !onPath("agent-runner-auth")) {
    out.push(
      "agent-runner-auth is not on PATH; Claude Code runs the helper through /bin/sh (cmd on Windows), so install it or add its directory to PATH",
    );
  }
  return out;
}

/** Whether `name` is an executable file in a `PATH` directory. Needs `--allow-env --allow-read`. */
function onPath(name: string): boolean {
  const windows = Deno.build.os === "windows";
  const dirs = (Deno.env.get("PATH") ?? "").split(windows ? ";" : ":").filter(Boolean);
  const names = windows ? [`${name}.exe`, `${name}.cmd`, `${name}.bat`] : [name];
  for (const dir of dirs) {
    for (const n of names) {
      try {
        const info = Deno.statSync(`${dir}${windows ? "\\" : "/"}${n}`);
        if (info.isFile && (windows || ((info.mode ?? 0) & 0o111) !== 0)) return true;
      } catch {
        // not here
      }
    }
  }
  return false;
}

/** `~/…` for paths under HOME, for shorter messages. */
function tildify(path: string): string {
  const home = Deno.env.get("HOME");
  return home && path.startsWith(home + "/") ? `~${path.slice(home.length)}` : path;
}
