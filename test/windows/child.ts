/**
 * A second `deno.exe` for the Wine tests: a writer of the real Credential Manager or a holder of
 * the real lock that the test can watch (one line on stdout per event) and kill at a chosen
 * point. Runs only on Windows (Wine); `ffi/` does the native calls.
 *
 * Usage (needs `--allow-ffi --allow-read --allow-write`):
 *
 *     write <service> <item> <seed> <bytes> <pauseAfter>
 *         stores value(seed, bytes) with the real store, counting the store's mutating
 *         Credential Manager calls (writes and deletes); after call number <pauseAfter> prints
 *         "paused after <n>: <call> <target>" and hangs until killed (0: never pauses; prints
 *         "done" at the end)
 *     write-loop <service> <item> <bytes>
 *         prints "writing", then stores value("A") and value("B") alternately until its stdin
 *         closes, then prints "done <rounds>"
 *     hold <lockPath> <then>
 *         takes the lock (acquire, 60 s deadline), prints "held", then, by <then>:
 *         `hang` waits until killed; `exit-on-stdin` exits without releasing when stdin closes
 *     wait <lockPath>
 *         acquires the lock with a 120 s deadline, printing "waiting" once if busy, then
 *         "acquired", releases and exits
 *
 * @module
 */

import { type CredentialApi, CredentialManager } from "../../ffi/windows/advapi32.ts";
import { WindowsCredentialStore } from "../../src/store/windows_credential_manager.ts";
import { WindowsLockFile } from "../../src/lock/windows.ts";

/** A printable value of exactly `bytes` UTF-8 bytes, distinct per `seed` at every position. */
export function value(seed: string, bytes: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const shift = seed.charCodeAt(0);
  let text = "";
  for (let i = 0; i < bytes; i++) text += alphabet[(i * 7 + shift + (i >> 6)) % alphabet.length];
  return text;
}

function say(line: string): void {
  // One write per line, so the reading side never sees half a line.
  Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));
}

const forever = () => new Promise<never>(() => setInterval(() => {}, 60_000));

/** The real Credential Manager, pausing (forever) after the `pauseAfter`-th mutating call. */
class PausingApi implements CredentialApi {
  readonly #real = new CredentialManager();
  #calls = 0;
  constructor(readonly pauseAfter: number) {}
  read(target: string) {
    return this.#real.read(target);
  }
  list(prefix: string) {
    return this.#real.list(prefix);
  }
  write(target: string, blob: Uint8Array, userName: string) {
    this.#real.write(target, blob, userName);
    this.#after("write", target);
  }
  delete(target: string) {
    const existed = this.#real.delete(target);
    this.#after("delete", target);
    return existed;
  }
  #after(call: string, target: string) {
    if (++this.#calls !== this.pauseAfter) return;
    say(`paused after ${this.#calls}: ${call} ${target}`);
    // Block this (only) thread: the store's own code must not run one step further.
    const flag = new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(flag, 0, 0);
  }
}

async function main([mode, ...args]: string[]): Promise<void> {
  if (mode === "write") {
    const [service, item, seed, bytes, pauseAfter] = args;
    const store = new WindowsCredentialStore({
      api: new PausingApi(Number(pauseAfter)),
      service,
    });
    await store.set(item, value(seed, Number(bytes)));
    say("done");
  } else if (mode === "write-loop") {
    const [service, item, bytes] = args;
    const store = new WindowsCredentialStore({ service });
    let stop = false;
    (async () => {
      for await (const _ of Deno.stdin.readable) { /* until the parent closes it */ }
      stop = true;
    })();
    say("writing");
    let rounds = 0;
    // store.set awaits a digest, so the stdin reader above gets its turn between rounds.
    for (; !stop; rounds++) {
      await store.set(item, value(rounds % 2 === 0 ? "A" : "B", Number(bytes)));
    }
    say(`done ${rounds}`);
  } else if (mode === "hold") {
    const [lockPath, then] = args;
    await new WindowsLockFile(lockPath).acquire({ timeoutMs: 60_000 });
    say("held");
    if (then === "exit-on-stdin") {
      for await (const _ of Deno.stdin.readable) { /* until the parent closes it */ }
      Deno.exit(0); // without release: Windows frees the lock with the process's handles
    }
    await forever();
  } else if (mode === "wait") {
    const [lockPath] = args;
    const held = await new WindowsLockFile(lockPath).acquire({
      timeoutMs: 120_000,
      onWait: () => say("waiting"),
    });
    say("acquired");
    held.release();
  } else {
    throw new Error(`child.ts: unknown mode ${mode}`);
  }
}

if (import.meta.main) await main(Deno.args);
