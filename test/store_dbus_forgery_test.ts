/**
 * A same-user peer on the session bus forges the keyring's `SearchItems` reply (issue 11 #2),
 * as the security review did. Before the fix the D-Bus reader matched replies by serial only
 * (serials are predictable), took the forged item path, and the real gnome-keyring then
 * decrypted that other item for our session: the cached read returned an unrelated secret,
 * which `token` would print and Claude Code would send to the proxy as the API key.
 *
 * Driven by events: the peer eavesdrops (the fixture's bus allows it, as many session buses do)
 * on the keyring's replies and our calls. The reader's first call, `Properties.GetAll`, is
 * awaited before `OpenSession` and `SearchItems` leave (a gnome-keyring crash, see
 * `secret_read.ts`), so the keyring is stopped (SIGSTOP) as soon as its `GetAll` reply to us
 * passes: our `SearchItems` then waits in its queue, the peer forges the answer, and a round
 * trip to the bus proves the forgery was routed before the keyring resumes. The keyring is idle
 * between that reply and our next call, so the stop lands first in practice; a round where the
 * keyring answered before the stop proves nothing (the late forgery matches no pending call)
 * and is run again, as is the 1-in-256 leading-zero round.
 */
import assert from "node:assert/strict";
import { readSecret } from "../src/store/dbus/secret_read.ts";
import { METHOD_CALL, METHOD_RETURN } from "../src/store/dbus/wire.ts";
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
      const keyringName = (await peer.call({
        ...BUS,
        member: "GetNameOwner",
        signature: "s",
        args: ["org.freedesktop.secrets"],
      })).body[0] as string;
      for (
        const rule of [
          "type='method_call',interface='org.freedesktop.Secret.Service',member='SearchItems',eavesdrop='true'",
          `type='method_return',sender='${keyringName}',eavesdrop='true'`,
        ]
      ) await peer.call({ ...BUS, member: "AddMatch", signature: "s", args: [rule] });

      const foreign: string[] = [];
      let read: Awaited<ReturnType<typeof readSecret>> | undefined;
      let rounds = 0;
      for (; rounds < 8; rounds++) {
        foreign.length = 0;
        const reading = readSecret(lookupAttributes(ACCESS), {
          getEnv: (name) => env[name],
          timeoutMs: 600_000,
          timeoutError: () => new StoreError("timeout", "no answer"),
          onForeignReply: (sender) => foreign.push(sender),
        });
        // The keyring's answer to our GetAll (the first call it gets from us): stop it now.
        const getAll = await peer.next((m) =>
          m.type === METHOD_RETURN && m.sender === keyringName && m.signature === "a{sv}" &&
          m.destination !== peer!.name
        );
        Deno.kill(keyringPid, "SIGSTOP");
        const ours = await peer.next((m) =>
          m.type === METHOD_CALL && m.member === "SearchItems" && m.sender === getAll.destination
        );
        await peer.forgeReturn(ours.sender!, ours.serial, "aoao", [[otherItem], []]);
        await peer.call({ ...BUS, member: "GetId" }); // the forgery is routed before this answer
        Deno.kill(keyringPid, "SIGCONT");

        read = await reading;
        if (read.kind === "fallback" && /leading zero/.test(read.why)) continue;
        const keyringFirst = foreign.length === 0 && read.kind === "found" &&
          read.value === "our-access-token";
        if (!keyringFirst) break; // else the keyring answered before it was stopped: again
      }
      assert.ok(rounds < 8, "no round where the forgery arrived first in 8");
      assert.deepEqual(read, { kind: "found", value: "our-access-token" });
      assert.deepEqual(foreign, [peer.name], "the forged reply was seen, and dropped");
    } finally {
      if (keyringPid) Deno.kill(keyringPid, "SIGCONT");
      await peer?.close();
      await service.stop();
    }
  },
});
