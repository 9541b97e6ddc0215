/**
 * A failure reaches the person (SPEC.md §1.7).
 *
 * Claude Code's TUI runs the helper with every standard stream captured and never shows a
 * failing helper's stderr: after its retries it says "Please run /login", Claude's own login,
 * not ours (research A.10). But the helper runs in the TUI's session, so `/dev/tty` opens and
 * what is written there shows above Claude's screen, as the login prompts already do. So when
 * `token` fails, the same one line goes there too, worded for someone looking at Claude Code:
 * what is wrong and the exact command to run in another terminal. Not when stderr already is
 * a terminal (the person sees it), never on Windows (no `/dev/tty`), never a token, never more
 * than the line.
 *
 * Loaded only when `token` fails; it loads libc through FFI (`ffi/posix/libc.ts`) because Deno
 * opens `/dev/tty` only with `--allow-all`.
 *
 * @module
 */

import type { Env } from "../config/paths.ts";
import { tokenHash } from "../token/last_print.ts";

/**
 * The same line is not written again within this window: Claude Code tries a failing helper
 * three times in about four seconds (2.1.332), and three copies would only clutter its screen.
 */
export const REPEAT_WINDOW_MS = 30_000;

/** How the login command should be spelt here: over SSH without a display, paste mode. */
export function loginCommand(env: Env, profile: string): string {
  const ssh = Boolean(env.get("SSH_CONNECTION") || env.get("SSH_TTY") || env.get("SSH_CLIENT"));
  const display = Boolean(env.get("DISPLAY") || env.get("WAYLAND_DISPLAY"));
  return `agent-runner-auth login${ssh && !display ? " --no-browser" : ""}${
    profile === "default" ? "" : ` --profile ${profile}`
  }`;
}

/**
 * The line for the terminal: the error's reason without its own "run `…`" tail, then the one
 * command to run. A reason that names `login` gets the login command spelt for this machine;
 * one that names another command keeps it; anything else points at `doctor`.
 */
export function terminalLine(message: string, env: Env, profile: string): string {
  const oneLine = message.replace(/\s*[\r\n]+\s*/g, " ").trim();
  const named = /[;:,]?\s*(?:then )?run `([^`]+)`[^;]*$/.exec(oneLine);
  let reason = named ? oneLine.slice(0, named.index).trim() : oneLine;
  reason = reason.replace(/[.;:,]+$/, "");
  let command = named?.[1] ?? "agent-runner-auth doctor";
  if (/^agent-runner-auth login(\s|$)/.test(command) && !/--tenant-url/.test(command)) {
    command = loginCommand(env, profile);
  }
  return `agent-runner-auth (Claude Code's apiKeyHelper) cannot give Claude Code a token: ${reason}. ` +
    `In another terminal, run: ${command}`;
}

/**
 * Writes {@linkcode terminalLine} to the controlling terminal when one opens and stderr is not
 * already a terminal, unless the same line went there less than {@linkcode REPEAT_WINDOW_MS}
 * ago (`marker`: a small file holding the line's hash and the time, beside the config). Best
 * effort: any failure is silent (stderr has the line anyway).
 */
export async function echoFailureToTerminal(
  message: string,
  profile: string,
  marker: string | null,
  env: Env = Deno.env,
  now: number = Date.now(),
): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    if (Deno.stderr.isTerminal()) return;
    const line = terminalLine(message, env, profile);
    const stamp = `${tokenHash(line)} `;
    if (marker) {
      const last = (() => {
        try {
          return Deno.readTextFileSync(marker);
        } catch {
          return "";
        }
      })();
      const at = Number(last.slice(stamp.length));
      if (last.startsWith(stamp) && now >= at && now - at < REPEAT_WINDOW_MS) return;
    }
    const libc = await import("../../ffi/posix/libc.ts");
    const fd = libc.openControllingTerminal();
    if (fd === null) return;
    try {
      // \r\n: the TUI has the terminal in raw mode, where \n alone does not return the carriage.
      libc.writeFd(fd, new TextEncoder().encode(`\r\n${line}\r\n`));
    } finally {
      libc.closeFd(fd);
    }
    if (marker) Deno.writeTextFileSync(marker, `${stamp}${now}`, { mode: 0o600 });
  } catch {
    // no terminal to tell
  }
}
