/**
 * Where the Windows tests run, for their names: `under Wine 10.0` (Debian trixie's Wine in the
 * chroot that `deno task test:windows` builds), `on Windows` (the windows-latest runners), or
 * `on Windows only` elsewhere, where they are ignored. `deno task test:windows` selects the tests whose name
 * says "under Wine", so a test that ran anywhere else can never be counted as a Wine test.
 *
 * @module
 */

import { wineVersion } from "../../ffi/windows/ntdll.ts";

/** Not on Windows (nor Wine): the real-OS tests are ignored here. */
export const notWindows = Deno.build.os !== "windows";

/** Under Wine: a throw-away WINEPREFIX, so the real default paths and store names are safe. */
export const underWine = !notWindows && wineVersion() !== null;

/** `under Wine <version>`, `on Windows`, or `on Windows only` (ignored) elsewhere. */
export const WHERE = notWindows
  ? "on Windows only"
  : ((version) => version ? `under Wine ${version}` : "on Windows")(wineVersion());
