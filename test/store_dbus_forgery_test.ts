/**
 * A same-user peer on the session bus forges the keyring's `SearchItems` reply (issue 11 #2),
 * as the security review did. Before the fix the D-Bus reader matched replies by serial only
 * (serials are predictable), took the forged item path, and the real gnome-keyring then
 * decrypted that other item for our session: the cached read returned an unrelated secret,
 * which `token` would print and Claude Code would send to the proxy as the API key.
 *
 * Deterministic, by events: the peer eavesdrops (the fixture's bus allows it, as many session
 * buses do) for our `SearchItems`, the keyring is stopped (SIGSTOP) so the forgery surely
 * arrives first, and a round trip to the bus proves it was routed before the keyring resumes.
 */
import assert from "node:assert/strict";
import { readSecret } from "../src/store/dbus/secret_read.ts";
import { METHOD_CALL } from "../src/store/dbus/wire.ts";
import { lookupAttributes } from "../src/store/early_read.ts";
import { SCHEMA_NAME } from "../ffi/linux/libsecret.ts";
import { StoreError } from "../src/errors.ts";
import { DBusPeer } from "./fixtures/dbus_peer.ts";
import {
  secretServiceTestOptions,
  secretTool,
  startSecretService,
} from "./fixtures/secret_service.ts";

const ACCESS = "agent-runner-access-token";
const BUS = {
  destination: "org.freedesktop.DBus",
  path: "/org/freedesktop/DBus",
  interface: "org.freedesktop.DBus",
};

Deno.test({
  name:
    "D-Bus read: a forged SearchItems reply from another bus client is ignored; the keyring's own answer is read (issue 11 #2)",
  ...secretServiceTestOptions(),
  fn: async () => {
    const service = await startSecretService();
    let keyringPid = 0;
    let peer: DBusPeer | null = null;
    try {
      const env = service.env;
      const store = async (attributes: string[], value: string) => {
        const r = await secretTool(env, ["store", "--label", "t", ...attributes], value);
        assert.equal(r.code, 0, r.stderr);
      };
      await store(
        ["xdg:schema", SCHEMA_NAME, "service", "agent-runner-auth", "account", ACCESS],
        "our-access-token",
      );
      await store(["service", "another-app", "account", "bank"], "UNRELATED-SECRET");

      peer = await DBusPeer.connect(env.DBUS_SESSION_BUS_ADDRESS.replace(/^unix:path=/, ""));
      const found = await peer.call({
        destination: "org.freedesktop.secrets",
        path: "/org/freedesktop/secrets",
        interface: "org.freedesktop.Secret.Service",
        member: "SearchItems",
        signature: "a{ss}",
        args: [[["service", "another-app"], ["account", "bank"]]],
      });
      const otherItem = (found.body[0] as string[])[0];
      assert.ok(otherItem, "the other app's item");
      keyringPid = (await peer.call({
        ...BUS,
        member: "GetConnectionUnixProcessID",
        signature: "s",
        args: ["org.freedesktop.secrets"],
      })).body[0] as number;
      await peer.call({
        ...BUS,
        member: "AddMatch",
        signature: "s",
        args: [
          "type='method_call',interface='org.freedesktop.Secret.Service',member='SearchItems',eavesdrop='true'",
        ],
      });

      // One session in 256 derives a shared secret with a leading zero byte, which the read
      // leaves to libsecret (`secret_read.ts`): that round proves nothing, so it is run again.
      const foreign: string[] = [];
      let read: Awaited<ReturnType<typeof readSecret>> | undefined;
      for (let attempt = 0; attempt < 4; attempt++) {
        foreign.length = 0;
        Deno.kill(keyringPid, "SIGSTOP");
        const reading = readSecret(lookupAttributes(ACCESS), {
          getEnv: (name) => env[name],
          timeoutMs: 600_000,
          timeoutError: () => new StoreError("timeout", "no answer"),
          onForeignReply: (sender) => foreign.push(sender),
        });
        const ours = await peer.next((m) =>
          m.type === METHOD_CALL && m.member === "SearchItems" && m.sender !== peer!.name
        );
        await peer.forgeReturn(ours.sender!, ours.serial, "aoao", [[otherItem], []]);
        await peer.call({ ...BUS, member: "GetId" }); // the forgery is routed before this answer
        Deno.kill(keyringPid, "SIGCONT");

        read = await reading;
        if (!(read.kind === "fallback" && /leading zero/.test(read.why))) break;
      }
      assert.deepEqual(read, { kind: "found", value: "our-access-token" });
      assert.deepEqual(foreign, [peer.name], "the forged reply was seen, and dropped");
    } finally {
      if (keyringPid) Deno.kill(keyringPid, "SIGCONT");
      await peer?.close();
      await service.stop();
    }
  },
});
