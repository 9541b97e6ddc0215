/**
 * End-to-end world for subprocess tests: a private Secret Service, the Cognito-compatible
 * server, a throwaway HOME and config dir, and the real CLI run as `deno task cli` runs it (its
 * command read from deno.json, so the tests cannot drift from it): the bundle of `src/` that
 * the binary is compiled from, with the binary's flags.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import {
  type CognitoServer,
  type CognitoServerOptions,
  startCognitoServer,
} from "./cognito_server.ts";
import {
  type SecretServiceFixture,
  secretServiceTestOptions,
  secretTool,
  startSecretService,
} from "./fixtures/secret_service.ts";
import { SCHEMA_NAME } from "../ffi/linux/libsecret.ts";
import { type PassFixture, startPass } from "./fixtures/pass.ts";
import { EncryptedFileStore } from "../src/store/encrypted_file.ts";
import {
  type CallbackCheck,
  type CallbackListener,
  listenForCallback,
} from "../src/oauth/loopback.ts";
import { LoginFailedError } from "../src/errors.ts";
import { BUNDLE_ENTRY, staleBundleReason } from "../dist/bundle.ts";

/** Repository root, no trailing slash. */
export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Why `dist/bundle/` is not the current source (`deno task test` builds it first), or null. */
const staleBundle = await staleBundleReason();

/**
 * `deno task cli`'s command with the config and entry point (the bundle, `dist/bundle.ts`)
 * made absolute, so the CLI can run from any cwd (Claude Code runs the helper in the session's
 * cwd). Throws when the bundle is missing or older than the source: a test would otherwise
 * pass or fail on old code.
 */
export function cliArgv(): string[] {
  if (staleBundle) throw new Error(staleBundle);
  const words = denoJson.tasks.cli.command.split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run") throw new Error("tasks.cli must be `deno run …`");
  if (!words.includes(BUNDLE_ENTRY)) throw new Error(`tasks.cli must run ${BUNDLE_ENTRY}`);
  const rest = words.slice(2).map((w) => (w === BUNDLE_ENTRY ? `${ROOT}/${BUNDLE_ENTRY}` : w));
  return ["run", "--config", `${ROOT}/deno.json`, ...rest];
}

/**
 * {@linkcode cliArgv} with another entry point in the bundle's place: a baseline or a probe run
 * with exactly the CLI's flags (the benchmark).
 */
export function cliArgvWith(entry: string): string[] {
  const bundle = `${ROOT}/${BUNDLE_ENTRY}`;
  return cliArgv().map((w) => (w === bundle ? entry : w));
}

/** Output of one CLI run. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Options for a {@linkcode World}. */
export interface WorldOptions {
  server?: CognitoServerOptions;
  /** Redirect URI registered at the server and written to config (default: a free port). */
  redirectUri?: string;
  /** Extra env for every CLI run. */
  env?: Record<string, string>;
  /**
   * Run the CLI with `AGENT_RUNNER_STORE` set to this store. `pass` also gets a throw-away
   * pass store (`GNUPGHOME`, `PASSWORD_STORE_DIR` in the CLI's env). Default: none, so the CLI
   * picks `auto`, which is the private Secret Service. The Secret Service runs in every world,
   * so a test can check that another store did not silently fall back to it.
   */
  store?: WorldStore;
}

/** The stores a {@linkcode World} can point the CLI at explicitly. */
export type WorldStore = "secret-service" | "pass" | "encrypted-file";

/** A private world; always `close()` it. */
export class World {
  readonly server: CognitoServer;
  readonly keyring: SecretServiceFixture;
  readonly dir: string;
  readonly configDir: string;
  readonly redirectUri: string;
  readonly browserLog: string;
  /** The store named by `AGENT_RUNNER_STORE` in every run, or `null` for `auto`. */
  readonly store: WorldStore | null;
  /** The throw-away pass store when {@linkcode WorldOptions.store} is `pass`. */
  readonly pass: PassFixture | null;
  extraEnv: Record<string, string>;
  readonly #storeEnv: Record<string, string>;

  private constructor(
    server: CognitoServer,
    keyring: SecretServiceFixture,
    dir: string,
    redirectUri: string,
    env: Record<string, string>,
    store: WorldStore | null = null,
    pass: PassFixture | null = null,
  ) {
    this.server = server;
    this.keyring = keyring;
    this.dir = dir;
    this.configDir = `${dir}/config`;
    this.redirectUri = redirectUri;
    this.browserLog = `${dir}/browser.log`;
    this.extraEnv = env;
    this.store = store;
    this.pass = pass;
    this.#storeEnv = store ? { AGENT_RUNNER_STORE: store, ...pass?.env } : {};
  }

  /** Starts the server and a private Secret Service, and writes a config pointing at them. */
  static async create(options: WorldOptions = {}): Promise<World> {
    const dir = await Deno.makeTempDir({ prefix: "ara-e2e-" });
    const host = loopbackAddress();
    const redirectUri = options.redirectUri ?? `http://${host}:${freePort(host)}/callback`;
    const server = await startCognitoServer({
      ...options.server,
      clients: [{ clientId: "test-client", redirectUris: [redirectUri] }],
    });
    let keyring: SecretServiceFixture;
    try {
      keyring = await startSecretService();
    } catch (error) {
      await server.close();
      throw error;
    }
    let pass: PassFixture | null = null;
    if (options.store === "pass") {
      try {
        pass = await startPass({ root: `${dir}/pass` });
      } catch (error) {
        await Promise.allSettled([server.close(), keyring.stop()]);
        throw error;
      }
    }
    const world = new World(
      server,
      keyring,
      dir,
      redirectUri,
      options.env ?? {},
      options.store ?? null,
      pass,
    );
    await Deno.mkdir(world.configDir, { recursive: true, mode: 0o700 });
    await world.writeConfig();
    return world;
  }

  /** Writes config.json (merged with `overrides`). */
  async writeConfig(overrides: Record<string, unknown> = {}): Promise<void> {
    const config = {
      tenant_url: "https://acme.proxy.example.com",
      auth_domain: this.server.url,
      client_id: "test-client",
      scope: "openid email profile proxy/invoke",
      redirect_uri: this.redirectUri,
      ...overrides,
    };
    await Deno.writeTextFile(`${this.configDir}/config.json`, JSON.stringify(config, null, 2));
  }

  /** The CLI's environment: nothing inherited but PATH and the Deno cache. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    const home = Deno.env.get("HOME") ?? "/root";
    return {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${home}/.cache/deno`,
      NO_COLOR: "1",
      ...this.keyring.env,
      HOME: this.dir,
      AGENT_RUNNER_CONFIG_DIR: this.configDir,
      // The product's default, not less: on a loaded machine a 2 s bound ran out while the
      // server was still answering, and with rotation on that ended the session (issue 11 #8).
      // Tests of a slow server set their own, shorter bound.
      AGENT_RUNNER_HTTP_TIMEOUT_MS: "10000",
      // Far above any store call's time, as in the benchmark: on a loaded machine 16 callers
      // opening libsecret sessions together queue at the single-threaded keyring for seconds,
      // past the 3 s default (issue 11 #8). Tests of a hung store set their own bound.
      AGENT_RUNNER_STORE_TIMEOUT_MS: "30000",
      AGENT_RUNNER_LOGIN_TIMEOUT_MS: "20000",
      AGENT_RUNNER_LOCK_TIMEOUT_MS: "30000",
      ...this.#storeEnv,
      ...this.extraEnv,
      ...extra,
    };
  }

  /** Starts the CLI in this world, stdin empty and stdout and stderr piped (as Claude Code). */
  spawnCli(args: string[], extra: Record<string, string> = {}): Deno.ChildProcess {
    return new Deno.Command(Deno.execPath(), {
      args: [...cliArgv(), ...args],
      cwd: this.dir,
      env: this.env(extra),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Runs the CLI with pipes on every stream (as Claude Code does) and a kill timer. */
  async run(
    args: string[],
    extra: Record<string, string> = {},
    timeoutMs = 60_000,
  ): Promise<RunResult> {
    const started = performance.now();
    const child = this.spawnCli(args, extra);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    try {
      const out = await child.output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
        ms: performance.now() - started,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs the CLI the way Claude Code's TUI does: in a session with a pseudo-terminal (util-linux
   * `script`), yet with stdin, stdout and stderr redirected to files, so only /dev/tty is a
   * terminal. `$BROWSER` is the test browser.
   */
  async runInTerminal(
    args: string[],
    extra: Record<string, string> = {},
    timeoutMs = 60_000,
  ): Promise<RunResult> {
    const id = crypto.randomUUID().slice(0, 8);
    const out = `${this.dir}/out-${id}`;
    const err = `${this.dir}/err-${id}`;
    const argv = [Deno.execPath(), ...cliArgv(), ...args].map(shellQuote).join(" ");
    const started = performance.now();
    const child = new Deno.Command("script", {
      args: [
        "-qec",
        `${argv} </dev/null >${shellQuote(out)} 2>${shellQuote(err)}; echo $? >${
          shellQuote(out)
        }.rc`,
        "/dev/null",
      ],
      cwd: this.dir,
      env: this.env({
        BROWSER: `${ROOT}/test/browser`,
        TEST_BROWSER_LOG: this.browserLog,
        ...extra,
      }),
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    try {
      await child.status;
      const rc = Number((await Deno.readTextFile(`${out}.rc`).catch(() => "-1")).trim());
      return {
        code: rc,
        stdout: await Deno.readTextFile(out).catch(() => ""),
        stderr: await Deno.readTextFile(err).catch(() => ""),
        ms: performance.now() - started,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /** How many times the test browser was launched. */
  async browserLaunches(): Promise<number> {
    const text = await Deno.readTextFile(this.browserLog).catch(() => "");
    return text.split("\n").filter((l) => l.trim() !== "").length;
  }

  /** Reads a store item through the standard `secret-tool`, as a user could; `null` if absent. */
  async secretTool(account: string): Promise<string | null> {
    const r = await secretTool(this.keyring.env, [
      "lookup",
      "service",
      "agent-runner-auth",
      "account",
      account,
    ]);
    return r.code === 0 ? r.stdout : null;
  }

  /** Plants an item the way the CLI stores it (same schema and attributes), via `secret-tool`. */
  async storeItem(account: string, value: string): Promise<void> {
    const r = await secretTool(
      this.keyring.env,
      [
        "store",
        "--label",
        `test: ${account}`,
        "xdg:schema",
        SCHEMA_NAME,
        "service",
        "agent-runner-auth",
        "account",
        account,
      ],
      value,
    );
    if (r.code !== 0) throw new Error(`secret-tool store failed: ${r.stderr}`);
  }

  /**
   * Reads a store item from the world's store (`secret-tool`, `pass show`, or the encrypted
   * files read in-process), as a user could; `null` if absent.
   */
  async readItem(account: string): Promise<string | null> {
    if (this.store === "pass") {
      const r = await this.pass!.pass(["show", `agent-runner-auth/${account}`]);
      if (r.code === 0) return r.stdout;
      if (r.stderr.includes("is not in the password store")) return null;
      throw new Error(`pass show failed: ${r.stderr}`);
    }
    if (this.store === "encrypted-file") return await this.#encryptedFile().get(account);
    return await this.secretTool(account);
  }

  /** Plants an item in the world's store the way the CLI stores it. */
  async writeItem(account: string, value: string): Promise<void> {
    if (this.store === "pass") {
      const r = await this.pass!.pass(
        ["insert", "-m", "-f", `agent-runner-auth/${account}`],
        value,
      );
      if (r.code !== 0) throw new Error(`pass insert failed: ${r.stderr}`);
      return;
    }
    if (this.store === "encrypted-file") return await this.#encryptedFile().set(account, value);
    await this.storeItem(account, value);
  }

  #encryptedFile(): EncryptedFileStore {
    return new EncryptedFileStore({ dir: this.configDir, onWarning: () => {} });
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.server.close(), this.keyring.stop(), this.pass?.stop()]);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * A test that needs the private Secret Service: skipped loudly where it cannot run, a failure
 * instead under `AGENT_RUNNER_REQUIRE_SECRET_SERVICE=1` (set by `.ci/run`).
 */
export function secretServiceTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ...secretServiceTestOptions(), fn });
}

/** A free loopback TCP port on `hostname` (bound, read, released). */
export function freePort(hostname = "127.0.0.1"): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * {@linkcode listenForCallback} on a fresh port: `redirectFor(port)` names the redirect URI for a
 * port picked with {@linkcode freePort}. Between that pick and the bind, a test file running in
 * parallel can take the port (any outgoing loopback connection gets an ephemeral one), so when
 * the listener reports the port in use another one is picked, a bounded number of times. Once
 * bound, the port is ours until `close()`.
 */
export function listenOnFreshPort(
  redirectFor: (port: number) => string,
  check: CallbackCheck,
  hostname = "127.0.0.1",
): { port: number; listener: CallbackListener } {
  for (let attempt = 1;; attempt++) {
    const port = freePort(hostname);
    try {
      return { port, listener: listenForCallback([redirectFor(port)], check) };
    } catch (error) {
      const taken = error instanceof LoginFailedError && / is in use /.test(error.message);
      if (!taken || attempt >= 20) throw error;
    }
  }
}

/**
 * A random address in 127.0.0.0/8 other than 127.0.0.1. A callback port picked on 127.0.0.1
 * can be taken, between the pick and the login, by the ephemeral port of any outgoing loopback
 * connection of the tests running in parallel; on an address of its own nothing else binds.
 */
export function loopbackAddress(): string {
  const b = () => 1 + Math.floor(Math.random() * 254);
  return `127.${b()}.${b()}.${b()}`;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
