import assert from "node:assert/strict";
import { DEMO_PACKAGES, setup, type SetupDeps, TEST_PACKAGES } from "./setup.ts";

function fake(installed: string[] | null, isRoot: boolean, failOn?: string) {
  const said: string[] = [];
  const ran: string[] = [];
  const deps: SetupDeps = {
    installed: (packages) =>
      Promise.resolve(
        installed === null ? null : new Map(packages.map((p) => [p, installed.includes(p)])),
      ),
    exec: (cmd, args, env) => {
      ran.push(`${env?.DEBIAN_FRONTEND ?? ""} ${cmd} ${args.join(" ")}`);
      return Promise.resolve(failOn && args[0] === failOn ? 100 : 0);
    },
    isRoot,
    say: (line) => said.push(line),
  };
  return { deps, said, ran };
}

Deno.test("setup: nothing missing, nothing said or run", async () => {
  const f = fake([...TEST_PACKAGES], true);
  assert.equal(await setup(TEST_PACKAGES, f.deps), 0);
  assert.deepEqual([f.said, f.ran], [[], []]);
});

Deno.test("setup: as root, apt-get installs exactly what is missing", async () => {
  const f = fake(["gnome-keyring"], true);
  assert.equal(await setup(DEMO_PACKAGES, f.deps), 0);
  assert.deepEqual(f.ran, [
    "noninteractive apt-get update -qq",
    "noninteractive apt-get install -y -qq --no-install-recommends libsecret-1-0 libsecret-tools dbus",
  ]);
  assert.deepEqual(f.said, ["setup: apt-get install libsecret-1-0 libsecret-tools dbus"]);
  const failing = fake([], true, "install");
  assert.equal(await setup(DEMO_PACKAGES, failing.deps), 1);
  assert.match(failing.said.at(-1)!, /apt-get install failed/);
});

Deno.test("setup: not root, one line with the exact sudo command, exit 1, nothing run", async () => {
  const f = fake(["dbus"], false);
  assert.equal(await setup(DEMO_PACKAGES, f.deps), 1);
  assert.deepEqual(f.said, [
    "setup: missing Debian packages; run: sudo apt-get install -y gnome-keyring libsecret-1-0 libsecret-tools",
  ]);
  assert.deepEqual(f.ran, []);
});

Deno.test("setup: off Debian (no dpkg), a note and exit 0", async () => {
  const f = fake(null, false);
  assert.equal(await setup(DEMO_PACKAGES, f.deps), 0);
  assert.equal(f.said.length, 1);
  assert.match(f.said[0], /no dpkg here/);
});

Deno.test("setup: the real script reads dpkg-query and calls apt-get (stand-ins on PATH)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // dpkg-query knows gnome-keyring only; apt-get records its arguments.
    await Deno.writeTextFile(
      `${dir}/dpkg-query`,
      `#!/bin/sh\necho "gnome-keyring install ok installed"\necho "dbus deinstall ok config-files"\nexit 1\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(`${dir}/apt-get`, `#!/bin/sh\necho "$@" >> "${dir}/apt.log"\n`, {
      mode: 0o755,
    });
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", "--allow-run", "--allow-sys=uid", "test/setup.ts", "demo"],
      cwd: new URL("..", import.meta.url).pathname,
      env: { PATH: `${dir}:/usr/bin:/bin` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (Deno.uid() === 0) {
      assert.equal(out.code, 0, stderr);
      assert.equal(stderr, "setup: apt-get install libsecret-1-0 libsecret-tools dbus\n");
      assert.equal(
        await Deno.readTextFile(`${dir}/apt.log`),
        "update -qq\ninstall -y -qq --no-install-recommends libsecret-1-0 libsecret-tools dbus\n",
      );
    } else {
      assert.equal(out.code, 1);
      assert.match(stderr, /sudo apt-get install -y libsecret-1-0 libsecret-tools dbus\n$/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
