/**
 * The selector's `auto` against real services, each run in a fresh process: the trap it has to
 * live with (a locked keyring still answers a lookup) and what `verify`, meant for `login`, does
 * about it.
 */

import { passTestOptions, startPass } from "./fixtures/pass.ts";
import {
  lockKeyring,
  secretServiceTestOptions,
  startSecretService,
} from "./fixtures/secret_service.ts";
import { same } from "./store_contract.ts";

const SELECT_OP = new URL("./fixtures/select_op.ts", import.meta.url).pathname;

async function select(env: Record<string, string>, verify: boolean) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", SELECT_OP, ...(verify ? ["verify"] : [])],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!text) throw new Error(`select_op printed nothing: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text) as { backend?: string; failure?: string; message?: string };
}

Deno.test({
  name: "auto: a locked keyring still answers a lookup; verify (login) moves on to pass",
  ignore: secretServiceTestOptions().ignore || passTestOptions().ignore,
  fn: async () => {
    const service = await startSecretService();
    const pass = await startPass();
    try {
      const env = { ...service.env, ...pass.env, AGENT_RUNNER_CONFIG_DIR: `${service.home}/cfg` };
      same((await select(env, false)).backend, "secret-service", "unlocked, lookup probe");
      same((await select(env, true)).backend, "secret-service", "unlocked, write probe");
      await lockKeyring(service.env);
      same((await select(env, false)).backend, "secret-service", "locked, lookup probe (trap)");
      same((await select(env, true)).backend, "pass", "locked, write probe");
      const none = await select({ ...env, PASSWORD_STORE_DIR: `${service.home}/none` }, true);
      same(none.failure, "unavailable", JSON.stringify(none));
      same(
        /^No token store is available \(Secret Service: The Secret Service keyring is locked/.test(
          none.message ?? "",
        ),
        true,
        none.message ?? "",
      );
    } finally {
      await pass.stop();
      await service.stop();
    }
  },
});
