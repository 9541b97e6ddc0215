/**
 * The Secret Service store against real daemons: a private gnome-keyring for the contract and
 * interop with `secret-tool`, then the failure modes users hit (no D-Bus, no provider, a locked
 * keyring, a service that never answers), each in a fresh process because GLib reads the bus
 * address once per process.
 */

import { StoreError } from "../src/errors.ts";
import { withStoreTimeout } from "../ffi/linux/libsecret.ts";
import {
  PROBE_ITEM,
  type SecretServiceApi,
  SecretServiceStore,
} from "../src/store/secret_service.ts";
import { ACCESS_ITEM, REFRESH_ITEM, SERVICE } from "../src/store/store.ts";
import {
  lockKeyring,
  secretServiceTestOptions,
  secretTool,
  startSecretService,
} from "./fixtures/secret_service.ts";
import { assertStoreError, runStoreContract, same } from "./store_contract.ts";

const STORE_OP = new URL("./fixtures/store_op.ts", import.meta.url).pathname;

Deno.test({
  name: "SecretServiceStore against a private gnome-keyring (in-process)",
  ...secretServiceTestOptions(),
  fn: async (t) => {
    const service = await startSecretService();
    const saved = new Map(Object.keys(service.env).map((k) => [k, Deno.env.get(k)]));
    // Before the first libsecret call: GLib reads DBUS_SESSION_BUS_ADDRESS once per process.
    for (const [key, value] of Object.entries(service.env)) Deno.env.set(key, value);
    try {
      const store = new SecretServiceStore();

      await t.step("keeps the store contract", (t) => runStoreContract(t, () => store));

      await t.step("secret-tool reads what the store wrote (interop)", async () => {
        const value = "eyJhbGciOi.🔑 unicode\nand a newline";
        await store.set(ACCESS_ITEM, value);
        const lookup = await secretTool(service.env, [
          "lookup",
          "service",
          SERVICE,
          "account",
          ACCESS_ITEM,
        ]);
        same(lookup.code, 0, `secret-tool lookup exit code (${lookup.stderr.trim()})`);
        same(lookup.stdout, value, "the value secret-tool read");
        await store.delete(ACCESS_ITEM);
      });

      await t.step("an overwrite keeps one item, labelled and tagged with the schema", async () => {
        await store.set(REFRESH_ITEM, "first");
        await store.set(REFRESH_ITEM, "second");
        const search = await secretTool(service.env, [
          "search",
          "--all",
          "service",
          SERVICE,
          "account",
          REFRESH_ITEM,
        ]);
        // secret-tool prints the item's fields on stdout and "[/org/…]" headers on stderr.
        const text = search.stdout + search.stderr;
        same(text.match(/^label = /gm)?.length ?? 0, 1, `one item in:\n${text}`);
        same(text.includes(`label = ${SERVICE}: ${REFRESH_ITEM}`), true, `label in:\n${text}`);
        same(/^schema = io\.agent-runner\.Token$/m.test(text), true, "schema");
        same(text.includes("secret = second"), true, "the value is the second one");
        await store.delete(REFRESH_ITEM);
      });

      await t.step("assertUsable leaves no probe item behind", async () => {
        await store.assertUsable();
        const lookup = await secretTool(service.env, [
          "lookup",
          "service",
          SERVICE,
          "account",
          PROBE_ITEM,
        ]);
        same(lookup.stdout, "", "probe item after assertUsable");
      });

      await t.step("values C cannot carry unchanged are refused, not cut", async () => {
        for (const value of ["before\0after", "lone \ud800 surrogate"]) {
          let thrown: unknown;
          try {
            await store.set(ACCESS_ITEM, value);
          } catch (error) {
            thrown = error;
          }
          same(thrown instanceof TypeError, true, `TypeError for ${JSON.stringify(value)}`);
          same(String(thrown).includes(value), false, "the message does not echo the value");
        }
        same(await store.get(ACCESS_ITEM), null, "nothing was written");
      });

      // Last: the keyring cannot be unlocked again without a prompt.
      await t.step("a locked keyring reads as empty, and assertUsable says locked", async () => {
        await store.set(ACCESS_ITEM, "stored before the lock");
        await lockKeyring(service.env);
        same(await store.get(ACCESS_ITEM), null, "lookup in a locked collection (the trap)");
        const error = await assertStoreError(store.assertUsable(), "locked");
        same(/locked/i.test(error.message), true, `message: ${error.message}`);
        await assertStoreError(store.set(ACCESS_ITEM, "x"), "locked");
      });
    } finally {
      for (const [key, value] of saved) {
        if (value === undefined) Deno.env.delete(key);
        else Deno.env.set(key, value);
      }
      await service.stop();
    }
  },
});

Deno.test({
  name: "with no D-Bus session at all, the store fails fast with 'unavailable', not a hang",
  ...secretServiceTestOptions(),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "agent-runner-nobus-" });
    try {
      // No DBUS_SESSION_BUS_ADDRESS, no DISPLAY, and an empty XDG_RUNTIME_DIR (GLib would use
      // $XDG_RUNTIME_DIR/bus if it existed): the headless SSH / container case.
      const env = { HOME: dir, XDG_RUNTIME_DIR: dir, DENO_DIR: denoDir() };
      for (const op of ["get", "set", "assertUsable"]) {
        const { line, wallMs } = await storeOp(op, env, true);
        same(line.failure, "unavailable", `${op}: ${line.message}`);
        same(
          String(line.message).startsWith("No Secret Service is running"),
          true,
          `${op} message`,
        );
        same(String(line.message).includes("\n"), false, "one line");
        same((line.ms as number) < 1000, true, `${op} answered in ${line.ms} ms`);
        same(wallMs < 10_000, true, `${op} process ended in ${wallMs} ms`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "with a bus but no Secret Service provider, the store says 'unavailable'",
  ...secretServiceTestOptions(),
  fn: async () => {
    const service = await startSecretService({ provider: "none" });
    try {
      const { line } = await storeOp("get", service.env);
      same(line.failure, "unavailable", String(line.message));
      same(String(line.message).includes("org.freedesktop.secrets"), true, "names the service");
    } finally {
      await service.stop();
    }
  },
});

Deno.test({
  name: "a locked keyring in a fresh process: get is null, assertUsable is 'locked'",
  ...secretServiceTestOptions(),
  fn: async () => {
    const service = await startSecretService();
    try {
      same((await storeOp("set", service.env, false, "v")).line.ok, true, "set before locking");
      await lockKeyring(service.env);
      const get = await storeOp("get", service.env);
      same(get.line.ok && get.line.result === null, true, `get: ${JSON.stringify(get.line)}`);
      const usable = await storeOp("assertUsable", service.env);
      same(usable.line.failure, "locked", String(usable.line.message));
    } finally {
      await service.stop();
    }
  },
});

Deno.test({
  name: "a Secret Service that never answers times out at AGENT_RUNNER_STORE_TIMEOUT_MS",
  ...secretServiceTestOptions(),
  fn: async () => {
    const service = await startSecretService({ provider: "stall" });
    try {
      const env = { ...service.env, AGENT_RUNNER_STORE_TIMEOUT_MS: "300" };
      const { line, wallMs } = await storeOp("get", env);
      same(line.failure, "timeout", String(line.message));
      same(String(line.message).includes("within 300 ms"), true, String(line.message));
      const ms = line.ms as number;
      same(ms >= 290 && ms < 2000, true, `timed out after ${ms} ms`);
      // GDBus would give up only after 25 s; the explicit exit ends the process at once.
      same(wallMs < 10_000, true, `process ended in ${wallMs} ms`);
    } finally {
      await service.stop();
    }
  },
});

Deno.test("withStoreTimeout: a slow call loses to the timer", async () => {
  // The bound is passed explicitly: Deno.env is process-wide, and `deno test --parallel` runs
  // other files in the same process, whose store calls would see a 40 ms limit.
  let finish!: (value: string) => void;
  const slow = new Promise<string>((resolve) => finish = resolve);
  const started = performance.now();
  const error = await assertStoreError(withStoreTimeout(slow, "lookup", 40), "timeout");
  same(error.message.includes("within 40 ms (lookup)"), true, error.message);
  same(performance.now() - started >= 35, true, "waited for the timer");
  finish("late"); // a late answer is absorbed
});

Deno.test("withStoreTimeout: a call that wins clears its timer, and its rejection passes through", async () => {
  // The op sanitizer fails this test if a 60 s timer is left behind.
  same(await withStoreTimeout(Promise.resolve("v"), "lookup", 60_000), "v", "result");
  const failed = withStoreTimeout(
    Promise.reject(new StoreError("locked", "locked")),
    "store",
    60_000,
  );
  await assertStoreError(failed, "locked");
});

Deno.test("SecretServiceStore maps items to service/account attributes and a readable label", async () => {
  const seen: unknown[] = [];
  const api: SecretServiceApi = {
    storePassword: (attributes, label) => {
      seen.push(["store", attributes, label]);
      return Promise.resolve();
    },
    lookupPassword: (attributes) => {
      seen.push(["lookup", attributes]);
      return Promise.resolve(null);
    },
    clearPassword: (attributes) => {
      seen.push(["clear", attributes]);
      return Promise.resolve(true);
    },
  };
  const store = new SecretServiceStore(api);
  same(store.backend, "secret-service", "backend");
  await store.set(ACCESS_ITEM, "value");
  await store.get(REFRESH_ITEM);
  await store.delete(ACCESS_ITEM);
  await store.assertUsable();
  same(
    JSON.stringify(seen),
    JSON.stringify([
      ["store", { service: SERVICE, account: ACCESS_ITEM }, `${SERVICE}: ${ACCESS_ITEM}`],
      ["lookup", { service: SERVICE, account: REFRESH_ITEM }],
      ["clear", { service: SERVICE, account: ACCESS_ITEM }],
      ["store", { service: SERVICE, account: PROBE_ITEM }, `${SERVICE}: ${PROBE_ITEM}`],
      ["clear", { service: SERVICE, account: PROBE_ITEM }],
    ]),
    "calls (assertUsable is one store and one clear)",
  );
});

/** Runs `test/fixtures/store_op.ts` in a fresh process with `env` (only `env` plus PATH when
 * `clear`) and parses its one JSON line. */
async function storeOp(
  op: string,
  env: Record<string, string>,
  clear = false,
  stdin?: string,
): Promise<{ line: Record<string, unknown>; wallMs: number }> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-ffi", "--allow-env", "--no-lock", STORE_OP, op],
    env: clear ? { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" } : env,
    clearEnv: clear,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  const wallMs = performance.now() - started;
  const text = new TextDecoder().decode(output.stdout).trim();
  try {
    return { line: JSON.parse(text), wallMs };
  } catch {
    throw new Error(
      `store_op ${op} printed no JSON (exit ${output.code}): ${text} ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}

function denoDir(): string {
  const home = Deno.env.get("HOME") ?? "/root";
  return Deno.env.get("DENO_DIR") ?? `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/deno`;
}
