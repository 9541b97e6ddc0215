/**
 * An in-process {@linkcode TokenStore} for tests of the token state machine: no OS keychain, and
 * the failures a real keychain has (an error on one call, a locked keyring that reads as empty)
 * can be injected on purpose.
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import type { StoreBackend, TokenStore } from "./store.ts";

/** The operations a fault can be injected into. */
export type MemoryStoreOp = "get" | "set" | "delete" | "assertUsable";

/** One call as it reached the store, in order (the value is never recorded). */
export interface MemoryStoreCall {
  op: MemoryStoreOp;
  item?: string;
}

/**
 * A map-backed store. Every method needs no permission.
 *
 * ```ts
 * const store = new MemoryStore({ "agent-runner-refresh-token": "r1" });
 * store.failNext("set", new StoreError("timeout", "Secret Service did not answer"));
 * ```
 */
export class MemoryStore implements TokenStore {
  readonly backend: StoreBackend = "memory";
  /** Every call, in order, so a test can check e.g. that the refresh token is written first. */
  readonly calls: MemoryStoreCall[] = [];
  readonly #items = new Map<string, string>();
  readonly #faults = new Map<MemoryStoreOp, Error[]>();
  #locked = false;

  constructor(initial: Record<string, string> = {}) {
    for (const [item, value] of Object.entries(initial)) this.#items.set(item, value);
  }

  /**
   * Makes the next call of `op` throw `error` (default `StoreError("failed")`) without touching
   * the items. Calls queue up: two `failNext("set")` fail the next two sets.
   */
  failNext(op: MemoryStoreOp, error: Error = new StoreError("failed", `Injected ${op} failure`)) {
    const queue = this.#faults.get(op) ?? [];
    queue.push(error);
    this.#faults.set(op, queue);
  }

  /**
   * Behaves like a locked Secret Service collection (SPEC.md §4): `get` answers `null` with no
   * error, `set` and `assertUsable` throw `StoreError("locked")`. `locked = false` unlocks.
   */
  set locked(locked: boolean) {
    this.#locked = locked;
  }
  get locked(): boolean {
    return this.#locked;
  }

  /** A copy of the current items, for assertions. */
  snapshot(): Record<string, string> {
    return Object.fromEntries(this.#items);
  }

  get(item: string): Promise<string | null> {
    return this.#run("get", item, () => this.#locked ? null : this.#items.get(item) ?? null);
  }

  set(item: string, value: string): Promise<void> {
    return this.#run("set", item, () => {
      this.#assertUnlocked();
      this.#items.set(item, value);
    });
  }

  delete(item: string): Promise<boolean> {
    return this.#run("delete", item, () => {
      this.#assertUnlocked();
      return this.#items.delete(item);
    });
  }

  assertUsable(): Promise<void> {
    return this.#run("assertUsable", undefined, () => this.#assertUnlocked());
  }

  /** Async like a real backend, so callers that forget an `await` fail here too. */
  async #run<T>(op: MemoryStoreOp, item: string | undefined, action: () => T): Promise<T> {
    this.calls.push(item === undefined ? { op } : { op, item });
    await Promise.resolve();
    const fault = this.#faults.get(op)?.shift();
    if (fault) throw fault;
    return action();
  }

  #assertUnlocked(): void {
    if (this.#locked) throw new StoreError("locked", "The in-memory test store is locked");
  }
}
