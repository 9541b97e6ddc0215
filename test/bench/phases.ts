/**
 * Where the cached `token` time goes, for the benchmark's breakdown: the same steps as
 * `src/main.ts` → `src/cli/token.ts` on the cached path (load the modules `main.ts` imports
 * statically, start the early Secret Service read, build the context, read the config, open the
 * store, read the access item), each timed with `performance.now()`, printed as one JSON line on stderr. Then a second
 * read, which goes through libsecret as a refresh or a login would. Run with the CLI's own flags
 * in the benchmark's world; measurement only, no hook in `src/`.
 *
 * @module
 */

const marks: Record<string, number> = { start: performance.now() };
// Everything `src/main.ts` imports statically for the cached path, in one load as there.
const [{ startEarlyRead }, { makeContext }, { requireConfig }, { openStore }] = await Promise.all([
  import("../../src/store/early_read.ts"),
  import("../../src/cli/context.ts"),
  import("../../src/config/config.ts"),
  import("../../src/store/select.ts"),
  import("../../src/errors.ts"),
  import("../../src/cli/output.ts"),
  import("../../src/cli/token.ts"),
  import("../../src/store/secret_service.ts"),
]);
marks.imports = performance.now();
await startEarlyRead();
marks.early_sent = performance.now();
const ctx = makeContext();
const loaded = requireConfig(ctx.paths.config, ctx.profile);
marks.context_config = performance.now();
const store = await openStore(loaded);
marks.open_store = performance.now();
const value = await store.get(ctx.items.access);
marks.first_read = performance.now();
await store.get(ctx.items.access);
marks.second_read = performance.now();
console.error(JSON.stringify({ marks, found: value !== null }));
Deno.exit(0);
