/**
 * The set-up step of the README's two commands (`npx -y deno@<pinned> task demo`, `… task
 * test`): the tasks depend on `setup:demo` / `setup:test`, which run this first, so a fresh
 * Debian/Ubuntu machine with only node/npm needs nothing else (issue 13 point 13). npx brings
 * the pinned Deno (`.deno-version`); this brings the Debian packages: installed with apt-get
 * when we are root, otherwise named in one line with the exact `sudo apt-get install …` to
 * run. Nothing happens when everything is there, and off Debian it says what the tests would
 * use and goes on (the keyring tests skip themselves where their tools are missing).
 *
 * `deno run --allow-run --allow-sys=uid test/setup.ts demo|test`
 *
 * @module
 */

/**
 * What the demo needs: a private Secret Service (gnome-keyring in its own D-Bus session) and
 * the tools the fixture checks for (`secret-tool`, `dbus-send`, `dbus-monitor`:
 * test/fixtures/secret_service.ts). Found missing by running the demo on a fresh debootstrap.
 */
export const DEMO_PACKAGES: readonly string[] = [
  "gnome-keyring",
  "libsecret-1-0",
  "libsecret-tools",
  "dbus",
];

/**
 * What the whole suite needs: the demo's packages, the other stores (`secret-tool`, `pass`,
 * gpg), `script` for terminal tests, and the packaging tests' tools (lintian, apt-ftparchive,
 * shellcheck, ruby, dash, unzip, curl, wget: `test/fixtures/dist/helpers.ts`). `.ci/run`
 * installs the same list (test/setup_test.ts checks both).
 */
export const TEST_PACKAGES: readonly string[] = [
  ...DEMO_PACKAGES,
  "pass",
  "gnupg",
  "bsdutils",
  "apt-utils",
  "lintian",
  "shellcheck",
  "ruby",
  "unzip",
  "curl",
  "wget",
  "dash",
];

/** How to ask the system; replaced in tests. */
export interface SetupDeps {
  /** `dpkg-query`'s answer per package: installed or not; `null` when there is no dpkg. */
  installed(packages: readonly string[]): Promise<Map<string, boolean> | null>;
  /** Runs a command with inherited output; its exit code. */
  exec(cmd: string, args: string[], env?: Record<string, string>): Promise<number>;
  isRoot: boolean;
  say(line: string): void;
}

/** Installs or names what is missing; the exit code (0: ready). */
export async function setup(packages: readonly string[], deps: SetupDeps): Promise<number> {
  const state = await deps.installed(packages);
  if (state === null) {
    deps.say(
      `setup: no dpkg here (not Debian/Ubuntu), so nothing is installed; the keyring tests use ${
        packages.join(" ")
      } where present and skip themselves otherwise`,
    );
    return 0;
  }
  const missing = packages.filter((p) => !state.get(p));
  if (missing.length === 0) return 0;
  const install = ["install", "-y", "-qq", "--no-install-recommends", ...missing];
  if (!deps.isRoot) {
    deps.say(`setup: missing Debian packages; run: sudo apt-get install -y ${missing.join(" ")}`);
    return 1;
  }
  deps.say(`setup: apt-get install ${missing.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  if (await deps.exec("apt-get", ["update", "-qq"], env) !== 0) {
    deps.say("setup: apt-get update failed (see above)");
    return 1;
  }
  if (await deps.exec("apt-get", install, env) !== 0) {
    deps.say(`setup: apt-get install failed (see above); the packages: ${missing.join(" ")}`);
    return 1;
  }
  return 0;
}

/** The real system: dpkg-query, apt-get, the effective uid. */
export const systemDeps: SetupDeps = {
  async installed(packages) {
    let out;
    try {
      out = await new Deno.Command("dpkg-query", {
        args: ["-W", "-f", "${Package} ${Status}\\n", ...packages],
        stdout: "piped",
        stderr: "null",
      }).output();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    // Exit 1 when some package is unknown: its line is simply absent.
    const state = new Map(packages.map((p) => [p, false]));
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const [name, ...status] = line.split(" ");
      if (state.has(name.replace(/:.*$/, ""))) {
        state.set(name.replace(/:.*$/, ""), status.join(" ") === "install ok installed");
      }
    }
    return state;
  },
  async exec(cmd, args, env) {
    const child = new Deno.Command(cmd, { args, env, stdin: "null" }).spawn();
    return (await child.status).code;
  },
  get isRoot() {
    return Deno.build.os !== "windows" && Deno.uid() === 0;
  },
  say: (line) => console.error(line),
};

if (import.meta.main) {
  const which = Deno.args[0];
  if (which !== "demo" && which !== "test") {
    console.error("usage: test/setup.ts demo|test");
    Deno.exit(2);
  }
  Deno.exit(await setup(which === "demo" ? DEMO_PACKAGES : TEST_PACKAGES, systemDeps));
}
