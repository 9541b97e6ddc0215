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
import {
  asciiValue,
  assertStoreError,
  AWKWARD,
  runStoreContract,
  same,
  SIZES,
} from "./store_contract.ts";
import { readSecret, type SecretRead } from "../src/store/dbus/secret_read.ts";
import { BusConnection } from "../src/store/dbus/connection.ts";
import { SCHEMA_NAME } from "../ffi/linux/libsecret.ts";

/** The D-Bus reader on `env`'s bus, as the store calls it for `item`. */
function dbusRead(
  env: Record<string, string>,
  item: string,
  timeoutMs = 3000,
): Promise<SecretRead> {
  return readSecret({ service: SERVICE, account: item, "xdg:schema": SCHEMA_NAME }, {
    getEnv: (name) => env[name],
    timeoutMs,
    timeoutError: () => new StoreError("timeout", `no answer within ${timeoutMs} ms`),
  });
}

function sameRead(actual: SecretRead, expected: SecretRead, what: string): void {
  same(JSON.stringify(actual), JSON.stringify(expected), what);
}

/** Accepts the 1-in-256 session the reader hands to libsecret on purpose (leading zero byte). */
function isZeroByteFallback(read: SecretRead): boolean {
  return read.kind === "fallback" && read.why.includes("leading zero byte");
}

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

      await t.step(
        "the D-Bus reader reads what libsecret wrote, each value over its own encrypted session",
        async () => {
          let zeroByte = 0;
          const values = [...SIZES.map(asciiValue), ...AWKWARD, ...Array(40).fill("eyJ.same")];
          for (const value of values) {
            await store.set(ACCESS_ITEM, value);
            const read = await dbusRead(service.env, ACCESS_ITEM);
            if (isZeroByteFallback(read)) zeroByte++;
            else {sameRead(
                read,
                { kind: "found", value },
                `read of ${JSON.stringify(value.slice(0, 20))}`,
              );}
          }
          same(zeroByte <= 2, true, `${zeroByte} of ${values.length} sessions fell back`);
          await store.delete(ACCESS_ITEM);
          sameRead(await dbusRead(service.env, ACCESS_ITEM), { kind: "absent" }, "a missing item");
        },
      );

      await t.step(
        "the secret never crosses the bus in clear (dbus-monitor sees all)",
        async () => {
          const value = `secret-${crypto.randomUUID()}`;
          await store.set(ACCESS_ITEM, value);
          const monitor = new Deno.Command("dbus-monitor", {
            args: ["--address", service.env.DBUS_SESSION_BUS_ADDRESS, "--binary"],
            stdout: "piped",
            stderr: "null",
          }).spawn();
          const captured = new Response(monitor.stdout).arrayBuffer();
          await new Promise((resolve) => setTimeout(resolve, 300)); // let it become a monitor
          let read: SecretRead;
          do read = await dbusRead(service.env, ACCESS_ITEM); while (isZeroByteFallback(read));
          sameRead(read, { kind: "found", value }, "the read through the monitored bus");
          // The control: the same secret fetched over a plain session is in the capture.
          const plain = await plainSessionRead(service.env.DBUS_SESSION_BUS_ADDRESS, ACCESS_ITEM);
          await new Promise((resolve) => setTimeout(resolve, 300));
          monitor.kill();
          await monitor.status;
          const text = new TextDecoder("latin1").decode(await captured);
          same(plain, value, "the control read");
          same(text.split(value).length - 1, 1, "the value appears once: the plain control only");
          await store.delete(ACCESS_ITEM);
        },
      );

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
        const read = await dbusRead(service.env, ACCESS_ITEM);
        sameRead(read, { kind: "fallback", why: "the item is locked" }, "the D-Bus reader defers");
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
      same(ms >= 290, true, `timed out after ${ms} ms, before the bound`);
      // GDBus would give up only after 25 s; the explicit exit ends the process well before.
      // (Generous: this tells 25 s from a prompt exit, not how fast a loaded machine is.)
      same(wallMs < 20_000, true, `process ended in ${wallMs} ms`);
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

Deno.test("withStoreTimeout: a call that wins is not failed by its timer, and its rejection passes through", async () => {
  // The timer is left behind (AbortSignal.timeout cannot be cleared); it must not fail the call.
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
    // The CLI's own grants that matter here: the D-Bus reader needs read/write on the socket.
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--no-lock",
      STORE_OP,
      op,
    ],
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

/**
 * The test's control for the bus monitor: a `plain` session (no encryption) read of `item`, so
 * the monitor is shown to capture a secret that does cross in clear.
 */
async function plainSessionRead(address: string, item: string): Promise<string> {
  const bus = await BusConnection.open(address.replace(/^unix:path=/, "").split(",")[0]);
  try {
    const call = (
      path: string,
      iface: string,
      member: string,
      signature: string,
      args: unknown[],
    ) =>
      bus.call({
        destination: "org.freedesktop.secrets",
        path,
        interface: iface,
        member,
        signature,
        args,
      });
    const opened = await call(
      "/org/freedesktop/secrets",
      "org.freedesktop.Secret.Service",
      "OpenSession",
      "sv",
      ["plain", { signature: "s", value: "" }],
    );
    const session = opened.body[1] as string;
    const found = await call(
      "/org/freedesktop/secrets",
      "org.freedesktop.Secret.Service",
      "SearchItems",
      "a{ss}",
      [[["service", SERVICE], ["account", item]]],
    );
    const [unlocked] = found.body as [string[]];
    const secret = await call(unlocked[0], "org.freedesktop.Secret.Item", "GetSecret", "o", [
      session,
    ]);
    const [[, , value]] = secret.body as [[string, Uint8Array, Uint8Array, string]];
    return new TextDecoder().decode(value);
  } finally {
    bus.close();
  }
}

Deno.test("SecretServiceStore: only a process's first read goes through the D-Bus reader", async (t) => {
  const make = (fast: SecretRead) => {
    const seen: string[] = [];
    const api: SecretServiceApi = {
      storePassword: () => Promise.resolve(),
      lookupPassword: (attributes) => {
        seen.push(`libsecret ${attributes.account}`);
        return Promise.resolve("from libsecret");
      },
      clearPassword: () => Promise.resolve(true),
    };
    const store = new SecretServiceStore(api, (attributes) => {
      seen.push(`dbus ${attributes.account} ${attributes["xdg:schema"]}`);
      return Promise.resolve(fast);
    });
    return { store, seen };
  };
  await t.step("found: answered without libsecret; the next read is libsecret's", async () => {
    const { store, seen } = make({ kind: "found", value: "from dbus" });
    same(await store.get(ACCESS_ITEM), "from dbus", "first read");
    same(await store.get(REFRESH_ITEM), "from libsecret", "second read");
    same(
      seen.join(" | "),
      `dbus ${ACCESS_ITEM} ${SCHEMA_NAME} | libsecret ${REFRESH_ITEM}`,
      "calls",
    );
  });
  await t.step("absent: null, and libsecret is not asked", async () => {
    const { store, seen } = make({ kind: "absent" });
    same(await store.get(ACCESS_ITEM), null, "first read");
    same(seen.length, 1, "calls");
  });
  await t.step("after warmUp (off the cached path) every read is libsecret's", async () => {
    const { store, seen } = make({ kind: "found", value: "from dbus" });
    await store.warmUp();
    same(await store.get(ACCESS_ITEM), "from libsecret", "read after the warm-up");
    same(seen.join(" | "), `libsecret ${PROBE_ITEM} | libsecret ${ACCESS_ITEM}`, "calls");
  });
  await t.step("warmUp never throws: the real calls report failures", async () => {
    const store = new SecretServiceStore({
      storePassword: () => Promise.resolve(),
      lookupPassword: () => Promise.reject(new StoreError("unavailable", "no bus")),
      clearPassword: () => Promise.resolve(true),
    });
    await store.warmUp();
    await assertStoreError(store.get(ACCESS_ITEM), "unavailable");
  });
  await t.step(
    "a warm-up that timed out fails later calls at once, not after a second wait",
    async () => {
      let lookups = 0;
      const store = new SecretServiceStore({
        storePassword: () => new Promise(() => {}),
        lookupPassword: () => {
          lookups++;
          return Promise.reject(new StoreError("timeout", "Secret Service did not answer"));
        },
        clearPassword: () => new Promise(() => {}),
      });
      await store.warmUp();
      const error = await assertStoreError(store.get(ACCESS_ITEM), "timeout");
      same(error.message, "Secret Service did not answer", "the warm-up's error");
      await assertStoreError(store.set(ACCESS_ITEM, "v"), "timeout");
      same(lookups, 1, "libsecret was asked once");
    },
  );
  await t.step("fallback: libsecret answers the same read", async () => {
    const { store, seen } = make({ kind: "fallback", why: "the item is locked" });
    same(await store.get(ACCESS_ITEM), "from libsecret", "first read");
    same(
      seen.join(" | "),
      `dbus ${ACCESS_ITEM} ${SCHEMA_NAME} | libsecret ${ACCESS_ITEM}`,
      "calls",
    );
  });
});
