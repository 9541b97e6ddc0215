/**
 * How `login` signs in (issue 13 item 5, SPEC.md §1.3): a browser when one can be opened; a
 * terminal without a browser (SSH) switches to paste mode by itself and says why; neither, or
 * `--no-browser` without a terminal, is one line at once instead of a silent wait.
 */
import assert from "node:assert/strict";
import { planLogin } from "./interactive.ts";

const BROWSER = { program: "xdg-open", args: [] };

Deno.test("issue 13 item 5: login's mode from browser, terminal and --no-browser", () => {
  assert.deepEqual(planLogin(BROWSER, true, false, "linux"), { browser: BROWSER, paste: false });
  assert.deepEqual(planLogin(BROWSER, false, false, "linux"), { browser: BROWSER, paste: false });
  assert.deepEqual(planLogin(BROWSER, true, true, "linux"), { browser: null, paste: true });
  assert.deepEqual(planLogin(null, true, true, "linux"), { browser: null, paste: true });

  const ssh = planLogin(null, true, false, "linux");
  assert.ok(!("fail" in ssh));
  assert.equal(ssh.paste, true);
  assert.equal(ssh.browser, null);
  assert.match(ssh.pasteBecause!, /^No browser can be opened here \(\$BROWSER, \$DISPLAY/);

  const neither = planLogin(null, false, false, "linux");
  assert.ok("fail" in neither);
  assert.match(neither.fail, /no terminal .* and no browser .*login --no-browser/);
  assert.ok(!neither.fail.includes("\n"));

  for (const browser of [null, BROWSER]) {
    const noTerminal = planLogin(browser, false, true, "linux");
    assert.ok("fail" in noTerminal);
    assert.match(noTerminal.fail, /^login --no-browser needs a terminal/);
  }
  const windows = planLogin(null, false, true, "windows");
  assert.ok("fail" in windows);
  assert.match(windows.fail, /stdin is not a console/);
});
