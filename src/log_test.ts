/** The redaction every log line, debug trace and internal error goes through (SPEC.md §7). */
import assert from "node:assert/strict";
import { redact } from "./log.ts";

Deno.test("issue 11 finding 4: redact masks code=, state=, nonce= and code_challenge= of a pasted URL", () => {
  const crash =
    "Invalid URL: 'http://[bad?code=SECRETCODE123&state=SECRETSTATE&nonce=N1&code_challenge=C1'";
  const out = redact(crash);
  for (const secret of ["SECRETCODE123", "SECRETSTATE", "N1", "C1"]) {
    assert.ok(!out.includes(secret), out);
  }
  assert.equal(
    out,
    "Invalid URL: 'http://[bad?code=[redacted]&state=[redacted]&nonce=[redacted]&code_challenge=[redacted]'",
  );
  // Tokens as before.
  assert.equal(redact("refresh_token=abc def"), "refresh_token=[redacted] def");
});
