import { equal, ok } from "node:assert/strict";
import { lookupAttributes, startEarlyRead, takeEarlyRead } from "./early_read.ts";

/**
 * A config dir holding `config` (or none), and an env that points there and at a bus socket
 * that does not exist: a started read ends at once with a fallback, and nothing is real.
 */
async function withConfig(
  config: string | null,
  extra: Record<string, string>,
  fn: (env: { get(name: string): string | undefined }, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "agent-runner-early-" });
  try {
    if (config !== null) await Deno.writeTextFile(`${dir}/config.json`, config);
    const vars: Record<string, string> = {
      AGENT_RUNNER_CONFIG_DIR: dir,
      DBUS_SESSION_BUS_ADDRESS: `unix:path=${dir}/no-bus`,
      ...extra,
    };
    await fn({ get: (name) => vars[name] }, dir);
  } finally {
    takeEarlyRead({}); // never leave one behind for the next test
    await Deno.remove(dir, { recursive: true });
  }
}

const PINNED = JSON.stringify({
  client_id: "c",
  auth_domain: "a.example",
  store: "secret-service",
});

Deno.test("early read: starts when the config pins secret-service, and is taken once", async () => {
  await withConfig(PINNED, {}, async (env) => {
    await startEarlyRead(undefined, env); // resolves: the read ended (no bus) or was sent
    const attributes = lookupAttributes("agent-runner-access-token");
    const read = takeEarlyRead(attributes);
    ok(read, "the store's first read gets the early one");
    equal((await read).kind, "fallback", "no bus here: libsecret would be asked");
    equal(takeEarlyRead(attributes), null, "taken once");
  });
});

Deno.test("early read: resolves however the read ends first (abstract socket, no address)", async () => {
  for (const address of ["unix:abstract=/tmp/dbus-x", "tcp:host=localhost,port=1", ""]) {
    await withConfig(PINNED, { DBUS_SESSION_BUS_ADDRESS: address }, async (env) => {
      await startEarlyRead(undefined, env); // before the fix this never resolved
      const read = await takeEarlyRead(lookupAttributes("agent-runner-access-token"));
      equal(read?.kind, "fallback", address);
    });
  }
});

Deno.test("early read: a read of another item does not take it", async () => {
  await withConfig(PINNED, {}, async (env) => {
    await startEarlyRead(undefined, env);
    equal(takeEarlyRead(lookupAttributes("agent-runner-refresh-token")), null);
  });
});

Deno.test("early read: a profile's own store and item; AGENT_RUNNER_STORE wins", async () => {
  const config = JSON.stringify({ store: "pass", profiles: { work: { store: "secret-service" } } });
  await withConfig(config, {}, async (env) => {
    await startEarlyRead("work", env);
    ok(takeEarlyRead(lookupAttributes("agent-runner-access-token@work")), "profile work");
    await startEarlyRead(undefined, env);
    equal(takeEarlyRead(lookupAttributes("agent-runner-access-token")), null, "default: pass");
  });
  await withConfig(PINNED, { AGENT_RUNNER_STORE: "pass" }, async (env) => {
    await startEarlyRead(undefined, env);
    equal(takeEarlyRead(lookupAttributes("agent-runner-access-token")), null, "env says pass");
  });
});

Deno.test("early read: no head start without a pinned store, and never an error", async () => {
  const cases: [string, string | null, Record<string, string>][] = [
    ["no config file", null, {}],
    ["invalid JSON", "{ not json", {}],
    ["store auto", JSON.stringify({ store: "auto" }), {}],
    ["no store field", JSON.stringify({ client_id: "c" }), {}],
    ["a bad profile name", PINNED, { AGENT_RUNNER_PROFILE: "Not A Name" }],
  ];
  for (const [what, config, extra] of cases) {
    await withConfig(config, extra, async (env) => {
      await startEarlyRead(undefined, env);
      equal(takeEarlyRead(lookupAttributes("agent-runner-access-token")), null, what);
    });
  }
});
