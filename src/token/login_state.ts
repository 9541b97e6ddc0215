/**
 * The outcome of the last browser login, kept beside the lock (SPEC.md §1.4).
 *
 * Written only by the lock holder. A waiter reads it to say what it waits for, and after
 * getting the lock reads it again: a login that failed or was abandoned while it waited means
 * "do not open another browser" (no tab storms), and for a short cooldown no `token` call
 * starts a new one either. An `in_progress` record found by a process that now holds the lock
 * belongs to a process that died mid-login: it counts as abandoned.
 *
 * Needs `--allow-read --allow-write`.
 *
 * @module
 */

import { writeFileAtomic } from "../config/config.ts";

/**
 * The states a login goes through, and `signed_out`: written by `logout` under the lock, so a
 * `token` call that began before it does not sign straight back in (issue 11 #1).
 */
export type LoginStatus = "in_progress" | "succeeded" | "failed" | "abandoned" | "signed_out";

/** One record. */
export interface LoginState {
  status: LoginStatus;
  pid: number;
  /** Local-clock ms when this status was written. */
  at: number;
}

/** Reads the record; a missing or unreadable file is `null` (it is advisory). */
export function readLoginState(path: string): LoginState | null {
  try {
    const v = JSON.parse(Deno.readTextFileSync(path));
    if (
      typeof v?.status === "string" && typeof v?.pid === "number" && typeof v?.at === "number"
    ) {
      return v as LoginState;
    }
  } catch {
    // advisory only
  }
  return null;
}

/** Writes the record atomically; failures are ignored (advisory, must not break a login). */
export async function writeLoginState(path: string, state: LoginState): Promise<void> {
  try {
    await writeFileAtomic(path, JSON.stringify(state) + "\n");
  } catch {
    // advisory only
  }
}
