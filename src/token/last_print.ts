/**
 * A token the API rejected is not served again (SPEC.md §1.6).
 *
 * Claude Code keeps the helper's answer for `CLAUDE_CODE_API_KEY_HELPER_TTL_MS` and runs the
 * helper again before that only when the API answered 401/403 (measured with 2.1.197 and
 * 2.1.332: a 5xx or 529 retry does not re-run it). So when the same Claude Code process asks
 * again within half its TTL for the token we just gave it, the API rejected that token: printing
 * it again only makes Claude retry for minutes and die with `API Error: 401` (research A.10).
 * Then `token` refreshes once, under the lock, and prints the new token.
 *
 * The record, one small JSON file per profile beside the lock (`last-print.json`,
 * `last-print@NAME.json`), holds a 64-bit hash of the last printed token (never the token), the
 * Claude Code processes it went to and when, and the last such recovery:
 *
 *     {"v":1,"h":"<hash of the token>","seen":{"<caller>":<ms>,…},"rec":{"at":<ms>,"h":"…"}}
 *
 * The rule, for a call that would print token T:
 *     same caller got T less than half the helper TTL ago      -> the API rejected T:
 *         a recovery less than RECOVERY_INTERVAL_MS ago        -> print T (bounded: no loop)
 *             ...and it produced T less than JUST_REJECTED_MS ago -> fail: the fresh token was
 *                                                                  rejected too (one line)
 *         otherwise                                            -> refresh under the lock, print
 *     anything else                                            -> print T, note the caller
 *
 * Who "the caller" is. Claude Code runs the helper as `/bin/sh -c "<apiKeyHelper>"` (dash does
 * not exec the command; a wrapper script adds another shell), so our parent is a new shell on
 * every call and the Claude process is further up. Deno only reads `/proc/<pid>/…` with
 * `--allow-all`, and reading it through libc FFI would cost the cached path a dlopen (a few
 * ms, SPEC.md §8). So the caller is identified by what Claude Code hands to every child:
 * `CLAUDE_CODE_MESSAGING_SOCKET`, a path per Claude process (`/tmp/cc-socks/<pid>.sock` in
 * 2.1.332), and failing that our parent's pid (right where the shell execs the helper, as
 * bash and zsh do for a single `-c` command). The rule only runs when `CLAUDE_CODE_ENTRYPOINT`
 * says Claude Code ran us and `CLAUDECODE` is unset: Claude sets the latter in the shells of
 * its Bash tool, where a script may call `token` any number of times. Whenever Claude Code
 * renames these, the rule simply stops applying (the behaviour before it existed), and the
 * pinned-version suite (test/claude_code_test.ts) says so.
 *
 * Parallel sessions are different callers, so they cause no extra refresh; up to
 * {@linkcode MAX_CALLERS} are remembered. The file is written without the lock, in place and
 * without fsync (it is advisory: a lost entry only delays the recovery to Claude's next retry).
 *
 * No imports: this is on the cached path.
 *
 * @module
 */

/** At most one recovery refresh per profile in this interval, so nothing can loop. */
export const RECOVERY_INTERVAL_MS = 5 * 60_000;
/** A recovered token asked for again this soon by the same caller was rejected too. */
export const JUST_REJECTED_MS = 60_000;
/** Callers remembered per token (parallel sessions, subagent processes). */
export const MAX_CALLERS = 8;

/** The record on disk. */
export interface LastPrint {
  v: 1;
  /** {@linkcode tokenHash} of the last printed token. */
  h: string;
  /** Caller id → local-clock ms when it was last given that token. */
  seen: Record<string, number>;
  /** The last recovery refresh: when, and the hash of the token it produced. */
  rec?: { at: number; h: string };
}

/** What to do with the token `token` was about to print. */
export type Verdict =
  | { kind: "print" }
  | { kind: "recover" }
  | { kind: "rejected_again"; secondsAgo: number };

/**
 * The Claude Code process running us, as an opaque id, or `null` when the rule does not
 * apply (not run by Claude Code as its helper).
 */
export function claudeCaller(
  env: { get(name: string): string | undefined },
  ppid: number,
): string | null {
  if (!env.get("CLAUDE_CODE_ENTRYPOINT") || env.get("CLAUDECODE")) return null;
  const socket = env.get("CLAUDE_CODE_MESSAGING_SOCKET");
  return socket ? `s:${socket}` : `p:${ppid}`;
}

/**
 * The hash kept for a token: 64 bits from two multiply-xor lanes (after bryc's public-domain
 * cyrb53). It only has to tell our own tokens apart, and 64 bits cannot give back a
 * ~1,000-character token. Not SHA-256: WebCrypto's digest is asynchronous and its first call
 * costs milliseconds, and SHA-256 in TypeScript costs about a millisecond for a Cognito token
 * before V8 optimises it, the whole budget of this record on the cached path.
 */
export function tokenHash(token: string): string {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(16).padStart(8, "0") + (h1 >>> 0).toString(16).padStart(8, "0");
}

/** The window in which a second ask from one caller means "rejected": half the helper TTL. */
export function retryWindowMs(helperTtlMs: number): number {
  return Math.floor(helperTtlMs / 2);
}

/** Pure: the verdict for `caller` about to get the token hashed `h` at `now`. */
export function judge(
  record: LastPrint | null,
  caller: string,
  h: string,
  now: number,
  windowMs: number,
): Verdict {
  if (!record || record.h !== h) return { kind: "print" };
  const at = record.seen[caller];
  if (at === undefined || now < at || now - at >= windowMs) return { kind: "print" };
  const rec = record.rec;
  if (rec && now >= rec.at && now - rec.at < RECOVERY_INTERVAL_MS) {
    if (rec.h === h && now - rec.at < JUST_REJECTED_MS) {
      return { kind: "rejected_again", secondsAgo: Math.round((now - rec.at) / 1000) };
    }
    return { kind: "print" };
  }
  return { kind: "recover" };
}

/** Pure: the record after giving the token hashed `h` to `caller` at `now`. */
export function noted(
  record: LastPrint | null,
  caller: string,
  h: string,
  now: number,
  rec?: { at: number; h: string },
): LastPrint {
  const seen: Record<string, number> = record && record.h === h ? { ...record.seen } : {};
  seen[caller] = now;
  const callers = Object.keys(seen);
  if (callers.length > MAX_CALLERS) {
    callers.sort((a, b) => seen[a] - seen[b]);
    for (const c of callers.slice(0, callers.length - MAX_CALLERS)) delete seen[c];
  }
  const out: LastPrint = { v: 1, h, seen };
  const keep = rec ?? record?.rec;
  if (keep) out.rec = keep;
  return out;
}

/** Reads the record; missing, unreadable or foreign content is `null` (it is advisory). */
export function readLastPrint(path: string): LastPrint | null {
  try {
    const v = JSON.parse(Deno.readTextFileSync(path));
    if (v?.v !== 1 || typeof v.h !== "string" || typeof v.seen !== "object" || !v.seen) {
      return null;
    }
    const seen: Record<string, number> = {};
    for (const [k, at] of Object.entries(v.seen)) if (typeof at === "number") seen[k] = at;
    const out: LastPrint = { v: 1, h: v.h, seen };
    if (typeof v.rec?.at === "number" && typeof v.rec?.h === "string") {
      out.rec = { at: v.rec.at, h: v.rec.h };
    }
    return out;
  } catch {
    return null;
  }
}

/**
 * Writes the record in place: one open, one write of a few hundred bytes, no fsync, failures
 * ignored. No temporary file and rename: the record is advisory, and a reader that catches it
 * half written (truncated, not yet written) fails to parse it and treats it as no record,
 * which only means "print", the behaviour without this rule. A write this small is one
 * `write(2)`, so two writers never interleave inside it.
 */
export function writeLastPrint(path: string, record: LastPrint): void {
  try {
    Deno.writeTextFileSync(path, JSON.stringify(record) + "\n", { mode: 0o600 });
  } catch {
    // advisory only
  }
}
