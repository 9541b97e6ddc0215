/**
 * The pinned `issuer` is enforced for every ID token, at login and at every refresh (issue 11
 * #3, SPEC.md §5). Before the fix the client took the ID token's own `iss` as the expected
 * issuer, so a config whose `issuer` named another user pool still refreshed and stored.
 *
 * The server keeps its issuer; the config's pin is changed instead, which is the same mismatch
 * seen from the client (an auth domain now answering for another pool).
 */
import assert from "node:assert/strict";
import {
  assertNoSecrets,
  assertOneLineFailure,
  directSignIn,
  plant,
  stored,
} from "./fixtures/fault_kit.ts";
import { secretServiceTest, World } from "./harness.ts";

const OTHER_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool";

secretServiceTest(
  "issuer pin: a refresh whose ID token names another issuer than the pinned one -> exit 6 naming the field and both values, tokens kept (issue 11 #3)",
  async () => {
    const world = await World.create();
    try {
      const signIn = await directSignIn(world);
      await world.writeConfig({ issuer: OTHER_ISSUER });
      // Expired, and then still valid for 3 minutes: neither is printed, and nothing changes.
      for (const leftMs of [-60_000, 3 * 60_000]) {
        await plant(world, { access: { token: signIn.access, leftMs }, refresh: signIn.refresh });
        world.server.resetCounters();
        const r = await world.run(["token"]);
        assertOneLineFailure(
          r,
          6,
          new RegExp(
            `The ID token's issuer "${world.server.issuer}" is not the pinned issuer ` +
              `"${OTHER_ISSUER}" \\(field "issuer" in .*config\\.json\\); the stored tokens are kept`,
          ),
        );
        assert.equal(world.server.counters.tokenByGrant.refresh_token, 1);
        assert.deepEqual(await stored(world), { access: signIn.access, refresh: signIn.refresh });
        assertNoSecrets(world, [r.stderr]);
      }

      // The same refresh with the right pin goes through.
      await world.writeConfig({ issuer: world.server.issuer });
      const ok = await world.run(["token"]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.notEqual(ok.stdout.trim(), signIn.access);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "issuer pin: a browser login whose ID token names another issuer than the pinned one -> exit 6, nothing stored (issue 11 #3)",
  async () => {
    const world = await World.create();
    try {
      await world.writeConfig({ issuer: OTHER_ISSUER });
      const r = await world.runInTerminal(["token"]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /is not the pinned issuer .*\(field "issuer" in /);
      assert.equal(world.server.counters.tokenByGrant.authorization_code, 1);
      assert.deepEqual(await stored(world), { access: null, refresh: null });
    } finally {
      await world.close();
    }
  },
);
