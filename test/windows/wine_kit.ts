/**
 * Helpers of the Wine tests (`deno task test:windows`): Windows paths of repository files, and a
 * `deno.exe` child whose stdout lines the test can wait for and that it can kill at a chosen
 * point. Every wait has a generous deadline only so a hang fails instead of blocking the run;
 * nothing asserts on time.
 *
 * @module
 */

/** The Windows path (`Z:\repo\…` under Wine) of a file URL. */
export function windowsPath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  return (Deno.build.os === "windows" ? path.replace(/^\/([A-Za-z]:)/, "$1") : path)
    .replaceAll("/", Deno.build.os === "windows" ? "\\" : "/");
}

/** The repository root, as this OS writes it. */
export const REPO = windowsPath(new URL("../..", import.meta.url)).replace(/[\\/]$/, "");

/** `test/windows/child.ts`, run with the permissions it needs. */
export function childArgs(...args: string[]): string[] {
  return [
    "run",
    "-q",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--no-prompt",
    windowsPath(new URL("./child.ts", import.meta.url)),
    ...args,
  ];
}

/** A running `deno.exe` whose stdout is read line by line. */
export class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  #waiters: (() => void)[] = [];
  readonly #done: Promise<Deno.CommandStatus>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | null;

  constructor(args: string[], options: { env?: Record<string, string>; stdin?: boolean } = {}) {
    this.process = new Deno.Command(Deno.execPath(), {
      args,
      env: options.env,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = options.stdin ? this.process.stdin.getWriter() : null;
    const out = this.#read(this.process.stdout, (line) => this.lines.push(line));
    const err = this.#read(this.process.stderr, (line) => this.stderr += `${line}\n`);
    this.#done = Promise.all([out, err]).then(() => this.process.status);
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      rest += text;
      const parts = rest.split(/\r?\n/);
      rest = parts.pop()!;
      parts.forEach(onLine);
      this.#wake();
    }
    if (rest) onLine(rest);
    this.#wake();
  }

  #wake() {
    const waiters = this.#waiters;
    this.#waiters = [];
    waiters.forEach((wake) => wake());
  }

  /** Resolves with the first stdout line matching `pattern`; rejects when the child exits
   * without one or after `deadlineMs` (a hang guard, generous on a loaded machine). */
  async waitFor(pattern: RegExp, deadlineMs = 180_000): Promise<string> {
    let exited = false;
    this.#done.then(() => exited = true, () => exited = true);
    const deadline = Date.now() + deadlineMs;
    while (true) {
      const line = this.lines.find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (exited) {
        throw new Error(`the child exited without printing ${pattern}; stderr: ${this.stderr}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${pattern} within ${deadlineMs} ms; stdout: ${this.lines.join(" | ")}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Closes the child's stdin (it must have been started with `stdin: true`). */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close();
  }

  /** Kills it (TerminateProcess on Windows) and waits until it is gone. */
  async kill(): Promise<Deno.CommandStatus> {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already exited
    }
    return await this.#done;
  }

  /** Waits for the exit. */
  status(): Promise<Deno.CommandStatus> {
    return this.#done;
  }
}
