/**
 * Where the cached `token` time goes, for the benchmark's breakdown: the same steps as
 * `src/main.ts` → `src/cli/token.ts` on the cached path (start the early Secret Service read,
 * import the verb module, build the context, read the config, open the store, read the access
 * item), each timed with `performance.now()`, printed as one JSON line on stderr. Then a second
 * read, which goes through libsecret as a refresh or a login would. Run with the CLI's own flags
 * in the benchmark's world; measurement only, no hook in `src/`.
 *
 * @module
 */

const marks: Record<string, number> = { start: performance.now() };
await import("../../src/errors.ts");
await import("../../src/cli/output.ts");
marks.main_imports = performance.now();
const { startEarlyRead } = await import("../../src/store/early_read.ts");
marks.early_imports = performance.now();
await startEarlyRead();
marks.early_sent = performance.now();
const { makeContext } = await import("../../src/cli/context.ts");
const { requireConfig } = await import("../../src/config/config.ts");
await import("../../src/cli/token.ts");
marks.token_imports = performance.now();
const ctx = makeContext();
const loaded = requireConfig(ctx.paths.config, ctx.profile);
marks.context_config = performance.now();
const { openStore } = await import("../../src/store/select.ts");
const store = await openStore(loaded);
marks.open_store = performance.now();
const value = await store.get(ctx.items.access);
marks.first_read = performance.now();
await store.get(ctx.items.access);
marks.second_read = performance.now();
console.error(JSON.stringify({ marks, found: value !== null }));
Deno.exit(0);
