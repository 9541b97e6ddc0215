/**
 * `findBrowser`: how `$BROWSER` is read on each OS (pure: the OS is a parameter). The Windows
 * cases also run on Windows itself under Wine (`deno task test:windows`), where the login starts
 * a drive-letter `$BROWSER` for real.
 */

import { findBrowser } from "./interactive.ts";

function env(vars: Record<string, string>) {
  return { get: (name: string) => vars[name] };
}

function browser(value: string, os: typeof Deno.build.os, display = false) {
  return findBrowser(env(display ? { BROWSER: value, DISPLAY: ":0" } : { BROWSER: value }), os);
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

Deno.test("findBrowser on Windows: a drive-letter $BROWSER is one program, the list separator is ;", () => {
  const hostname = "C:\\windows\\system32\\hostname.exe";
  same(browser(hostname, "windows"), { program: hostname, args: [] }, "drive letter");
  same(
    browser(`${hostname};D:\\other.exe`, "windows"),
    { program: hostname, args: [] },
    "the first entry of a ; list",
  );
  same(
    browser(" ; C:\\b.exe --x", "windows"),
    { program: "C:\\b.exe", args: ["--x"] },
    "empty entries are skipped, arguments kept",
  );
});

Deno.test("findBrowser on Windows: a path with spaces works quoted or unquoted", () => {
  const firefox = "C:\\Program Files\\Mozilla Firefox\\firefox.exe";
  same(browser(firefox, "windows"), { program: firefox, args: [] }, "unquoted");
  same(
    browser(`${firefox} -new-window %s`, "windows"),
    { program: firefox, args: ["-new-window", "%s"] },
    "unquoted with arguments",
  );
  same(
    browser(`"${firefox}" -private-window`, "windows"),
    { program: firefox, args: ["-private-window"] },
    "quoted",
  );
  same(
    browser("C:\\tools\\open url.cmd", "windows"),
    { program: "C:\\tools\\open url.cmd", args: [] },
    "a .cmd with a space",
  );
  same(browser("msedge", "windows"), { program: "msedge", args: [] }, "a bare name");
});

Deno.test("findBrowser elsewhere: the list separator is : and entries split on whitespace", () => {
  same(
    browser("firefox --new-tab:chromium", "linux"),
    { program: "firefox", args: ["--new-tab"] },
    "linux",
  );
  same(browser("::w3m", "linux"), { program: "w3m", args: [] }, "empty entries skipped");
  same(browser("/Applications/x", "darwin"), { program: "/Applications/x", args: [] }, "darwin");
  same(
    browser('"/opt/My Browser/run" --flag', "linux"),
    { program: "/opt/My Browser/run", args: ["--flag"] },
    "quoted program",
  );
  same(findBrowser(env({}), "linux"), null, "no $BROWSER and no display");
  same(findBrowser(env({}), "windows"), {
    program: "rundll32",
    args: ["url.dll,FileProtocolHandler"],
  }, "Windows default");
  same(browser("", "linux", true), { program: "xdg-open", args: [] }, "empty $BROWSER: opener");
});
