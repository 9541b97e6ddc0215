import assert from "node:assert/strict";
import { checkDirectory, configFix } from "./doctor.ts";

const P = "/home/u/.config/agent-runner/config.json";

Deno.test("doctor: each config error's fix says what to change, and where", () => {
  const cases: [string, string, RegExp][] = [
    [
      `${P}:3: invalid JSON (Unexpected token)`,
      "default",
      /^correct the JSON syntax on line 3 of .*config\.json/,
    ],
    [
      `${P}: field "client_id" is missing`,
      "default",
      /^agent-runner-auth login --client-id ID \(adds "client_id" to .*config\.json\)$/,
    ],
    [
      `${P}: field "profiles.work.tenant_url" must use https (http only for loopback)`,
      "work",
      /^agent-runner-auth login --profile work --tenant-url URL \(replaces "tenant_url"/,
    ],
    [
      `${P}: field "store" must be one of auto, pass; got "x"`,
      "default",
      /^correct "store" in .*config\.json/,
    ],
    [
      `${P}: there is no profile "work"; run …`,
      "work",
      /^agent-runner-auth login --profile work --tenant-url URL --auth-domain HOST --client-id ID$/,
    ],
    [
      `${P}: the file is empty`,
      "default",
      /^write the settings as a JSON object in .*, or remove it and run agent-runner-auth login/,
    ],
    [`Cannot read ${P}: Permission denied`, "default", /^make .*config\.json readable by you/],
  ];
  for (const [message, profile, fix] of cases) {
    const got = configFix(message, P, profile);
    assert.match(got, fix, message);
    assert.doesNotMatch(got, /by hand/);
  }
});

Deno.test("doctor: the files fix names only files that exist (no chmod for a missing lock)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = `${dir}/cfg`;
    const lock = `${cfg}/lock`;
    await Deno.mkdir(cfg, { mode: 0o755 });
    await Deno.chmod(cfg, 0o755);
    const open = await checkDirectory(cfg, lock);
    assert.equal(open.ok, false);
    assert.equal(open.fix, `chmod 700 ${cfg}`);

    await Deno.writeTextFile(lock, "");
    await Deno.chmod(lock, 0o644);
    const both = await checkDirectory(cfg, lock);
    assert.equal(both.fix, `chmod 700 ${cfg}; chmod 600 ${lock}`);

    await Deno.chmod(cfg, 0o700);
    await Deno.chmod(lock, 0o600);
    assert.equal((await checkDirectory(cfg, lock)).ok, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
