/**
 * Fault suite, part 4: a bad `config.json` under the real CLI (SPEC.md §3). `token` must answer
 * every broken file with exit 3, nothing on stdout, one stderr line naming the file and the line
 * or field, and leave the file exactly as it was (bytes and mtime); unknown fields are kept and
 * do not get in the way. The store holds a valid token throughout, so a good config would print.
 */
import assert from "node:assert/strict";
import { cliArgv, type RunResult, World } from "./harness.ts";
import { secretServiceTestOptions } from "./fixtures/secret_service.ts";
import {
  assertNoSecrets,
  assertOneLineFailure,
  assertToken,
  directSignIn,
  plant,
  stored,
  writtenFiles,
} from "./fixtures/fault_kit.ts";

/** A config file's content and the one line `token` must answer it with. */
interface Case {
  name: string;
  text: (good: Record<string, unknown>) => string;
  stderr: (path: string) => RegExp;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

const CASES: Case[] = [
  {
    name: "empty file",
    text: () => "",
    stderr: (p) => new RegExp(`^agent-runner-auth: ${esc(p)}: the file is empty$`, "m"),
  },
  {
    name: "whitespace only",
    text: () => " \n\t\n",
    stderr: (p) => new RegExp(`${esc(p)}: the file is empty$`, "m"),
  },
  {
    name: "invalid JSON on line 3",
    text: () => '{\n  "tenant_url": "https://x.example.com",\n  "client_id": oops\n}\n',
    stderr: (p) => new RegExp(`^agent-runner-auth: ${esc(p)}:3: invalid JSON \\(.+\\)$`, "m"),
  },
  {
    name: "truncated mid-file (a crash while an editor saved it)",
    text: (good) => JSON.stringify(good, null, 2).slice(0, 60),
    stderr: (p) => new RegExp(`${esc(p)}:\\d+: invalid JSON`),
  },
  {
    name: "a JSON array at the top",
    text: (good) => JSON.stringify([good]),
    stderr: (p) => new RegExp(`${esc(p)}: expected a JSON object at the top level$`, "m"),
  },
  {
    name: "a JSON string at the top",
    text: () => '"https://acme.proxy.example.com"',
    stderr: (p) => new RegExp(`${esc(p)}: expected a JSON object at the top level$`, "m"),
  },
  {
    name: "wrong type: client_id is a number",
    text: (good) => JSON.stringify({ ...good, client_id: 12345 }),
    stderr: (p) => new RegExp(`${esc(p)}: field "client_id" must be a string, not a number$`, "m"),
  },
  {
    name: "wrong type: tenant_url is an array",
    text: (good) => JSON.stringify({ ...good, tenant_url: ["https://a.example.com"] }),
    stderr: (p) => new RegExp(`${esc(p)}: field "tenant_url" must be a string, not an array$`, "m"),
  },
  {
    name: "wrong type: scope is an object",
    text: (good) => JSON.stringify({ ...good, scope: { openid: true } }),
    stderr: (p) => new RegExp(`${esc(p)}: field "scope" must be a string, not an object$`, "m"),
  },
  {
    name: "missing field: auth_domain",
    text: (good) => JSON.stringify({ ...good, auth_domain: undefined }),
    stderr: (p) => new RegExp(`${esc(p)}: field "auth_domain" is missing$`, "m"),
  },
  {
    name: "missing fields: only tenant_url (the first missing one is named)",
    text: (good) => JSON.stringify({ tenant_url: good.tenant_url }),
    stderr: (p) => new RegExp(`${esc(p)}: field "auth_domain" is missing$`, "m"),
  },
  {
    name: "empty client_id",
    text: (good) => JSON.stringify({ ...good, client_id: "  " }),
    stderr: (p) => new RegExp(`${esc(p)}: field "client_id" is empty$`, "m"),
  },
  {
    name: "http auth domain that is not loopback",
    text: (good) => JSON.stringify({ ...good, auth_domain: "http://auth.example.com" }),
    stderr: (p) =>
      new RegExp(
        `${
          esc(p)
        }: field "auth_domain" may use plain http only for a loopback host, not "auth\\.example\\.com"$`,
        "m",
      ),
  },
  {
    name: "http auth domain on a look-alike of loopback",
    text: (good) => JSON.stringify({ ...good, auth_domain: "http://127.0.0.1.evil.example" }),
    stderr: () => /field "auth_domain" may use plain http only for a loopback host/,
  },
  {
    name: "redirect_uri that is not loopback",
    text: (good) => JSON.stringify({ ...good, redirect_uri: "http://evil.example:47621/cb" }),
    stderr: (p) =>
      new RegExp(`${esc(p)}: field "redirect_uri" must point at localhost, 127\\.0\\.0\\.1`, "m"),
  },
];

Deno.test({
  name:
    "fault: a broken config.json: exit 3, one line naming file and line or field, file untouched",
  ...secretServiceTestOptions(),
  fn: async (t) => {
    const world = await World.create();
    const stderrs: string[] = [];
    try {
      const path = `${world.configDir}/config.json`;
      const signIn = await directSignIn(world);
      await plant(world, { access: { token: signIn.access, leftMs: 3_600_000 } });
      const good = JSON.parse(await Deno.readTextFile(path));
      const sanity = await world.run(["token"]);
      assert.equal(assertToken(sanity, world), signIn.access, "a good config prints the token");

      for (const c of CASES) {
        await t.step(c.name, async () => {
          const text = c.text(good);
          await Deno.writeTextFile(path, text);
          const before = await Deno.stat(path);
          const r = await world.run(["token"]);
          stderrs.push(r.stderr);
          assertOneLineFailure(r, 3, c.stderr(path));
          assert.equal(await Deno.readTextFile(path), text, "the file is left byte for byte");
          assert.equal((await Deno.stat(path)).mtime?.getTime(), before.mtime?.getTime());
          const leftovers = [...Deno.readDirSync(world.configDir)].filter((e) =>
            e.name.endsWith(".tmp")
          );
          assert.deepEqual(leftovers, [], "no temp file left behind");
          assert.deepEqual(await stored(world), { access: signIn.access, refresh: null });
        });
      }

      await t.step("unknown fields are kept and do not get in the way", async () => {
        const text = JSON.stringify(
          { wizard: { step: 3, done: true }, ...good, future_option: [1, "two"], "x-note": null },
          null,
          2,
        );
        await Deno.writeTextFile(path, text);
        const r = await world.run(["token"]);
        stderrs.push(r.stderr);
        assert.equal(assertToken(r, world), signIn.access);
        assert.equal(r.stderr, "");
        assert.equal(await Deno.readTextFile(path), text);
      });

      await t.step("a directory where the file should be: exit 3, 'Cannot read'", async () => {
        await Deno.remove(path);
        await Deno.mkdir(path);
        try {
          const r = await world.run(["token"]);
          stderrs.push(r.stderr);
          assertOneLineFailure(r, 3, new RegExp(`Cannot read ${esc(path)}: .*[Ii]s a directory`));
          assert.ok((await Deno.stat(path)).isDirectory, "left as it was");
        } finally {
          await Deno.remove(path);
          await Deno.writeTextFile(path, JSON.stringify(good));
        }
      });

      await t.step("no config at all: exit 3 naming the login command", async () => {
        await Deno.remove(path);
        try {
          const r = await world.run(["token"]);
          stderrs.push(r.stderr);
          assertOneLineFailure(
            r,
            3,
            new RegExp(
              `Not configured: ${esc(path)} does not exist; run \`agent-runner-auth login`,
            ),
          );
          await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "token never creates it");
        } finally {
          await Deno.writeTextFile(path, JSON.stringify(good));
        }
      });
      assertNoSecrets(world, [...stderrs, ...(await writtenFiles(world))]);
    } finally {
      await world.close();
    }
  },
});

/**
 * Runs `token` unable to override file permissions: as root, with CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH dropped from the bounding set (util-linux `setpriv`), since root reads a
 * mode-000 file anyway; as any other user, plainly.
 */
async function runWithoutDacOverride(world: World): Promise<RunResult> {
  const argv = [Deno.execPath(), ...cliArgv(), "token"];
  const command = Deno.uid() === 0
    ? ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", ...argv]
    : argv;
  const out = await new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: world.dir,
    env: world.env(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms: 0,
  };
}

Deno.test({
  name: "fault: an unreadable config.json (mode 000): exit 3, 'Cannot read', file untouched",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    const path = `${world.configDir}/config.json`;
    try {
      const text = await Deno.readTextFile(path);
      await Deno.chmod(path, 0o000);
      const r = await runWithoutDacOverride(world);
      assertOneLineFailure(
        r,
        3,
        new RegExp(`^agent-runner-auth: Cannot read ${esc(path)}: .*[Pp]ermission denied`, "m"),
      );
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0, "mode left as it was");
      await Deno.chmod(path, 0o600);
      assert.equal(await Deno.readTextFile(path), text, "content left as it was");
    } finally {
      await Deno.chmod(path, 0o600).catch(() => {});
      await world.close();
    }
  },
});

Deno.test({
  // Found by this suite: Windows Notepad and some editors save UTF-8 with a byte-order mark,
  // and the CLI used to report "config.json:N: invalid JSON" for a perfectly valid file.
  name: "fault: a config saved with a UTF-8 byte-order mark is read",
  ...secretServiceTestOptions(),
  fn: async () => {
    const world = await World.create();
    try {
      const signIn = await directSignIn(world);
      await plant(world, { access: { token: signIn.access, leftMs: 3_600_000 } });
      const path = `${world.configDir}/config.json`;
      await Deno.writeTextFile(path, "\ufeff" + (await Deno.readTextFile(path)));
      const r = await world.run(["token"]);
      assert.equal(assertToken(r, world), signIn.access);
    } finally {
      await world.close();
    }
  },
});
