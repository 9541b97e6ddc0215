/**
 * What encrypting the cached read costs: the Secret Service read of the access item in a fresh
 * process, either as `token` does it (`dh`: `readSecret`, an encrypted session) or over a
 * `plain` session (no encryption, the secret in clear on the bus: what some CLIs do, and what
 * `token` does not), with the same D-Bus client, pipelining and flags. Measurement only, for
 * the benchmark's "what encryption costs" line.
 *
 * Prints one JSON line on stderr: the total from before the D-Bus modules load to the value
 * read, and the SHA-256 of the value, so the benchmark can check the right item was read
 * (never the value itself).
 *
 * Usage (from the benchmark, with the CLI's flags and the world's env):
 * `deno run … probe_read.ts dh|dh-unpinned|plain <account>` (`dh-unpinned`: `dh` without the
 * check that replies come from the keyring's bus name, to measure that check).
 *
 * @module
 */

const started = performance.now();
const { BusConnection, sessionBusPath } = await import("../../src/store/dbus/connection.ts");
const { readSecret } = await import("../../src/store/dbus/secret_read.ts");
const { lookupAttributes } = await import("../../src/store/early_read.ts");
const { StoreError } = await import("../../src/errors.ts");

const [mode, account = "agent-runner-access-token"] = Deno.args;
const getEnv = (name: string) => Deno.env.get(name);
let value = "";
if (mode === "dh" || mode === "dh-unpinned") {
  const read = await readSecret(lookupAttributes(account), {
    getEnv,
    // `dh-unpinned`: the same read without the keyring-only checks, only to measure them.
    unsafeSkipChecks: mode === "dh-unpinned",
    timeoutMs: 3000,
    timeoutError: () => new StoreError("timeout", "probe: no answer"),
  });
  if (read.kind === "fallback" && /leading zero/.test(read.why)) {
    // 1 session in 256 is left to libsecret: this sample measures nothing; the bench runs it again.
    console.error(JSON.stringify({ again: true }));
    Deno.exit(0);
  }
  if (read.kind !== "found") throw new Error(`probe: ${JSON.stringify(read)}`);
  value = read.value;
} else if (mode === "plain") {
  const bus = await BusConnection.open(sessionBusPath(getEnv)!);
  const service = {
    destination: "org.freedesktop.secrets",
    path: "/org/freedesktop/secrets",
    interface: "org.freedesktop.Secret.Service",
  };
  const opening = bus.call({
    ...service,
    member: "OpenSession",
    signature: "sv",
    args: ["plain", { signature: "s", value: "" }],
  });
  const searching = bus.call({
    ...service,
    member: "SearchItems",
    signature: "a{ss}",
    args: [Object.entries(lookupAttributes(account))],
  });
  const session = (await opening).body[1] as string;
  const [unlocked] = (await searching).body as [string[]];
  const secret = await bus.call({
    destination: service.destination,
    path: unlocked[0],
    interface: "org.freedesktop.Secret.Item",
    member: "GetSecret",
    signature: "o",
    args: [session],
  });
  value = new TextDecoder().decode((secret.body[0] as [string, Uint8Array, Uint8Array])[2]);
  bus.close();
} else if (mode === "checks") {
  // What believing only the keyring costs (issue 11 #2): the owner pin (GetNameOwner in the same
  // write) and the item's attributes (asked beside GetSecret). In this warm process, pairs of
  // reads with and without them, back to back in alternating order; prints the medians and the
  // median of the paired differences (the cost).
  const read = async (checks: boolean) => {
    const t0 = performance.now();
    const r = await readSecret(lookupAttributes(account), {
      getEnv,
      timeoutMs: 3000,
      timeoutError: () => new StoreError("timeout", "probe: no answer"),
      unsafeSkipChecks: !checks,
    });
    if (r.kind === "fallback" && /leading zero/.test(r.why)) return null; // 1 session in 256
    if (r.kind !== "found") throw new Error(`probe: ${JSON.stringify(r)}`);
    value = r.value;
    return performance.now() - t0;
  };
  const withChecks: number[] = [];
  const without: number[] = [];
  const cost: number[] = [];
  for (let i = -3; i < 100; i++) {
    let w: number | null, b: number | null;
    if (i % 2) {
      w = await read(true);
      b = await read(false);
    } else {
      b = await read(false);
      w = await read(true);
    }
    if (i < 0 || w === null || b === null) continue;
    withChecks.push(w);
    without.push(b);
    cost.push(w - b);
  }
  const median = (v: number[]) => v.sort((x, y) => x - y)[v.length >> 1];
  console.error(
    JSON.stringify({ with: median(withChecks), without: median(without), cost: median(cost) }),
  );
  Deno.exit(0);
} else {
  throw new Error("usage: probe_read.ts dh|dh-unpinned|plain|checks [account]");
}
const total = performance.now() - started;
const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
const sha256 = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
console.error(JSON.stringify({ total, sha256 }));
Deno.exit(0);
