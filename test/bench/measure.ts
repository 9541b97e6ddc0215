/**
 * The measuring parts `deno task bench` (bench.ts) and the compiled-binary measurement
 * (binary.ts) share: one command's spawn-to-exit wall time, commands interleaved round by round,
 * and the statistics of the samples. Sharing them keeps the release job's figure comparable with
 * the bench's.
 *
 * @module
 */

/** Median, p90 (nearest rank), minimum and count of a sample, rounded to 0.1 ms. */
export interface Stats {
  n: number;
  median: number;
  p90: number;
  min: number;
}

export function stats(xs: number[]): Stats {
  if (xs.length === 0) return { n: 0, median: NaN, p90: NaN, min: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  // Nearest rank: with 30 samples, p90 is the 27th.
  const p90 = s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)];
  return { n: s.length, median: round(median), p90: round(p90), min: round(s[0]) };
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** One run's wall time and output. */
export interface Timed {
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Spawn → exit wall time of one command, with every stream piped (as Claude Code runs it). */
export async function timed(
  argv: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<Timed> {
  const started = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    ms: performance.now() - started,
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

export function must(r: Timed, what: string): Timed {
  if (r.code !== 0) throw new Error(`${what} failed with exit ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** A command to time: its argv, its whole environment, and what its output must be. */
export interface Measured {
  argv: string[];
  env: Record<string, string>;
  /** Throws when a run did not do what is being measured (e.g. printed another token). */
  check?: (r: Timed) => void;
}

/**
 * Runs every command once per round, `warmup` rounds unrecorded then `rounds` recorded, the
 * order rotated every round so no command always runs right after another and a slow patch of
 * the machine hits all of them alike. Returns the recorded wall times per command.
 */
export async function interleave(
  commands: Record<string, Measured>,
  options: { warmup: number; rounds: number; cwd: string },
): Promise<Record<string, number[]>> {
  const names = Object.keys(commands);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = -options.warmup; round < options.rounds; round++) {
    const shift = round + options.warmup;
    for (const name of names.map((_, i) => names[(i + shift) % names.length])) {
      const command = commands[name];
      const r = must(await timed(command.argv, command.env, options.cwd), name);
      command.check?.(r);
      if (round >= 0) samples[name].push(r.ms);
    }
  }
  return samples;
}
