/**
 * May `token` start a browser login from here? (SPEC.md §1.3)
 *
 * Three conditions, all required: `$CI` unset (any non-empty value counts as set); a terminal
 * the user is looking at (a standard stream is a TTY, or on Unix the controlling terminal
 * `/dev/tty` opens: under Claude Code's TUI none of the three streams is a TTY but `/dev/tty`
 * is, research A.2); and a way to open a browser. The reason is kept so the "not signed in"
 * error can say exactly which condition failed.
 *
 * @module
 */

import type { Env } from "../config/paths.ts";
import { closeFd, openControllingTerminal } from "../../ffi/posix/libc.ts";

/** The browser command: a program and the arguments that precede the URL. */
export interface BrowserCommand {
  program: string;
  args: string[];
}

/** Result of {@linkcode detectInteractivity}. */
export interface Interactivity {
  interactive: boolean;
  /** Why not, as a clause for an error message ("$CI is set"). */
  reason: string;
  /** Where a prompt can be shown: a TTY standard stream, `/dev/tty`, or nowhere. */
  terminal: "stdio" | "devtty" | null;
  browser: BrowserCommand | null;
}

/** Checks the three conditions. Needs `--allow-env` and `--allow-ffi` (/dev/tty through libc). */
export function detectInteractivity(
  env: Env = Deno.env,
  os: typeof Deno.build.os = Deno.build.os,
): Interactivity {
  const terminal = findTerminal(os);
  const browser = findBrowser(env, os);
  const ci = env.get("CI");
  if (ci !== undefined && ci !== "") {
    return { interactive: false, reason: "$CI is set", terminal, browser };
  }
  if (!terminal) {
    return {
      interactive: false,
      reason: "no terminal (no standard stream is a TTY and /dev/tty cannot be opened)",
      terminal,
      browser,
    };
  }
  if (!browser) {
    return {
      interactive: false,
      reason: "no browser can be opened (set $BROWSER, or use `login --no-browser`)",
      terminal,
      browser,
    };
  }
  return { interactive: true, reason: "", terminal, browser };
}

function findTerminal(os: typeof Deno.build.os): "stdio" | "devtty" | null {
  if (Deno.stdin.isTerminal() || Deno.stdout.isTerminal() || Deno.stderr.isTerminal()) {
    return "stdio";
  }
  if (os === "windows") return null;
  const fd = openControllingTerminal();
  if (fd === null) return null;
  closeFd(fd);
  return "devtty";
}

/**
 * `$BROWSER` first, then the desktop's opener. On Linux an opener only counts when a display
 * exists: over SSH without a forwarded display `xdg-open` would fall back to a text browser or
 * fail.
 *
 * `$BROWSER` is a list separated by the OS's path-list separator, `;` on Windows and `:`
 * elsewhere (as Python's `webbrowser` reads it): splitting at `:` on Windows cut every
 * drive-letter path (`C:\…`) down to `C`. The first non-empty entry is used. An entry is a
 * program and the arguments that precede the URL (or replace `%s`), never run through a shell:
 * - `"C:\Program Files\Mozilla Firefox\firefox.exe" -new-window`: a quoted program, any OS;
 * - on Windows, unquoted, the program runs up to the first `.exe`/`.com`/`.bat`/`.cmd` followed
 *   by a space or the end, as `CreateProcess` resolves an unquoted command line, so
 *   `C:\Program Files\…\firefox.exe` works as typed;
 * - otherwise the entry is split on whitespace.
 */
export function findBrowser(env: Env, os: typeof Deno.build.os): BrowserCommand | null {
  const windows = os === "windows";
  const entry = env.get("BROWSER")?.split(windows ? ";" : ":").map((e) => e.trim())
    .find((e) => e !== "");
  if (entry) {
    const words = (text: string) => text.split(/\s+/).filter((w) => w !== "");
    const quoted = /^"([^"]+)"(?:\s+(.*))?$/.exec(entry);
    if (quoted) return { program: quoted[1], args: words(quoted[2] ?? "") };
    const windowsPath = windows ? /^(.*?\.(?:exe|com|bat|cmd))(?:\s+(.*))?$/i.exec(entry) : null;
    if (windowsPath) return { program: windowsPath[1], args: words(windowsPath[2] ?? "") };
    const [program, ...args] = words(entry);
    return { program, args };
  }
  switch (os) {
    case "darwin":
      return { program: "open", args: [] };
    case "windows":
      return { program: "rundll32", args: ["url.dll,FileProtocolHandler"] };
    default: {
      const display = env.get("DISPLAY") || env.get("WAYLAND_DISPLAY");
      return display ? { program: "xdg-open", args: [] } : null;
    }
  }
}

/** The argv for opening `url` with `browser`. */
export function browserArgv(browser: BrowserCommand, url: string): string[] {
  const i = browser.args.indexOf("%s");
  if (i === -1) return [...browser.args, url];
  const args = [...browser.args];
  args[i] = url;
  return args;
}

/** How `login` signs in, from what {@linkcode detectInteractivity} found and the flags. */
export type LoginPlan =
  | { browser: BrowserCommand | null; paste: boolean; pasteBecause?: string }
  | { fail: string };

/**
 * Chooses the `login` verb's mode (SPEC.md §1.3, issue 13 item 5): a browser when one can be
 * opened; with a terminal but no browser (SSH) paste mode, chosen by itself and said; with
 * neither, or `--no-browser` without a terminal, a one-line failure at once instead of a
 * silent wait for a callback that cannot come. `canPaste` is whether a line can be read from
 * the user's terminal (stdin is a TTY, or `/dev/tty` opens).
 */
export function planLogin(
  browser: BrowserCommand | null,
  canPaste: boolean,
  noBrowser: boolean,
  os: typeof Deno.build.os = Deno.build.os,
): LoginPlan {
  const noTerminal = os === "windows"
    ? "no terminal (stdin is not a console)"
    : "no terminal (stdin is not a terminal and /dev/tty cannot be opened)";
  if (noBrowser) {
    return canPaste ? { browser: null, paste: true } : {
      fail:
        `login --no-browser needs a terminal to paste the redirect address into, and there is ${noTerminal}; run it in a terminal`,
    };
  }
  if (browser) return { browser, paste: false };
  const noBrowserWhy =
    "no browser can be opened ($BROWSER, $DISPLAY and $WAYLAND_DISPLAY are unset)";
  if (!canPaste) {
    return {
      fail:
        `Cannot sign in here: ${noTerminal} and ${noBrowserWhy}; run \`agent-runner-auth login --no-browser\` in a terminal (over SSH too) and paste the redirect address`,
    };
  }
  return {
    browser: null,
    paste: true,
    pasteBecause:
      `No browser can be opened here ($BROWSER, $DISPLAY and $WAYLAND_DISPLAY are unset: an SSH session?)`,
  };
}
