// The benchmark's start-up floor: `deno run` of a script that does nothing (SPEC.md §8).
