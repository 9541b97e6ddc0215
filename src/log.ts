/**
 * The log (issue 4): Claude Code shows a helper's stderr only when it fails, and not always
 * then, so every failure of a verb is also appended, one line with a timestamp, to a small
 * rotating file that `status` and `doctor` point to. `AGENT_RUNNER_LOG=debug` (or `-v`) adds
 * a debug trace on stderr. Both go through {@linkcode redact}: no token ever reaches them
 * (git-credential-manager masks secrets in traces the same way).
 *
 * Off the cached path: `src/main.ts` imports this only after a failure or for `-v`.
 *
 * @module
 */

/** The file is rotated to `<log>.1` past this size, so it stays small. */
export const MAX_LOG_BYTES = 256 * 1024;

/**
 * Masks anything shaped like a credential: JWTs (three base64url parts), long base64url or
 * hex runs (opaque and refresh tokens, codes, verifiers), `key=value` pairs of OAuth secrets
 * (tokens, `code`, and the login's `state`, `nonce` and PKCE values: a pasted redirect URL can
 * reach an error message, issue 11 finding 4), and every string in `secrets` (tokens the
 * caller knows about).
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join("[redacted]");
  return out
    .replace(/eyJ[\w-]*\.[\w-]+\.[\w-]*/g, "[redacted-jwt]")
    .replace(
      /\b(access_token|refresh_token|id_token|code|code_verifier|code_challenge|state|nonce|token|client_secret|password)=([^&\s"']+)/gi,
      "$1=[redacted]",
    )
    .replace(/[A-Za-z0-9_\-+/]{40,}={0,2}/g, "[redacted]");
}

/** Appends one timestamped line to the failure log, rotating it; never throws. Needs `--allow-write`. */
export function appendLog(path: string, line: string, now = new Date()): void {
  try {
    const dir = path.replace(/[\\/][^\\/]*$/, "");
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      if (Deno.statSync(path).size > MAX_LOG_BYTES) Deno.renameSync(path, `${path}.1`);
    } catch {
      // no log yet
    }
    const text = `${now.toISOString()} ${redact(line).replace(/[\r\n]+/g, " ")}\n`;
    Deno.writeTextFileSync(path, text, { append: true, mode: 0o600 });
  } catch {
    // the log is best effort: never turn a failure into another one
  }
}

/** Whether the debug trace is on (`AGENT_RUNNER_LOG=debug`, or `-v` seen by the dispatcher). */
export function debugEnabled(): boolean {
  return Deno.env.get("AGENT_RUNNER_LOG") === "debug";
}

/** A redacted debug line on stderr when enabled. */
export function debug(message: string): void {
  if (debugEnabled()) console.error(`agent-runner-auth: debug: ${redact(message)}`);
}
