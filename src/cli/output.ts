/**
 * The two output channels (STYLE.md §5): stdout is the answer a verb was asked for (`token`'s
 * one line and nothing else; the help, the version, `status` and `doctor`, so `--help | less`
 * works as with git, gh and kubectl); stderr is the conversation (progress, prompts, warnings,
 * errors) as single lines prefixed with the program name, because Claude Code shows a failing
 * helper's stderr as `apiKeyHelper failed: exited N: <stderr>`.
 *
 * No imports: this is on the cached path.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes all of `bytes` to a sync writer (a pipe may accept fewer bytes per call). */
function writeAll(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

/** The token, exactly: raw value plus one newline (SPEC.md §1.1). */
export function printToken(token: string): void {
  writeAll(Deno.stdout, encoder.encode(token + "\n"));
}

/** A one-line message on stderr; inner line breaks are folded so it stays one line. */
export function stderrLine(message: string): void {
  const line = message.replace(/\s*[\r\n]+\s*/g, " ");
  try {
    writeAll(Deno.stderr, encoder.encode(`agent-runner-auth: ${line}\n`));
  } catch {
    // stderr closed: nothing better to do
  }
}

/** Plain text on stderr without the prefix (a report that is not the verb's answer). */
export function stderrText(text: string): void {
  try {
    writeAll(Deno.stderr, encoder.encode(text.endsWith("\n") ? text : text + "\n"));
  } catch {
    // stderr closed
  }
}

/**
 * What the user asked for, on stdout: help, `status`, `doctor`. A closed pipe (`| head`) ends
 * the output quietly instead of turning into an internal error.
 */
export function stdoutText(text: string): void {
  try {
    writeAll(Deno.stdout, encoder.encode(text.endsWith("\n") ? text : text + "\n"));
  } catch {
    // stdout closed by the reader (`| head`): it has what it wanted
  }
}

/**
 * A status line for the user during a login. When the standard streams are captured (Claude
 * Code's TUI) but `/dev/tty` is the user's terminal, the line goes there too, so the sign-in
 * URL is visible even if the browser does not open.
 */
export function makeSay(terminal: "stdio" | "devtty" | null): (line: string) => void {
  let tty: number | null = null;
  let write: ((fd: number, bytes: Uint8Array) => boolean) | null = null;
  const ready = terminal === "devtty" && !Deno.stderr.isTerminal()
    ? import("../../ffi/posix/libc.ts").then((libc) => {
      tty = libc.openControllingTerminal();
      write = libc.writeFd;
    })
    : null;
  return (line: string) => {
    stderrLine(line);
    const echo = () => {
      if (tty !== null && write && !write(tty, encoder.encode(`agent-runner-auth: ${line}\r\n`))) {
        tty = null;
      }
    };
    if (ready) void ready.then(echo, () => {});
  };
}
