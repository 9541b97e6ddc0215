/**
 * The whole `token` flow of the CLI from source on the Windows build of Deno, under Wine
 * (`deno task test:windows`; ignored elsewhere): the Cognito-compatible test server runs in this
 * `deno.exe` on 127.0.0.1 (Wine shares the host's loopback), every CLI call is its own
 * `deno.exe` with the default Windows paths (%APPDATA%, %LOCALAPPDATA% of the run's fresh
 * WINEPREFIX) and the real Credential Manager, and `login` starts a `$BROWSER` given as a
 * drive-letter path: `deno.exe` running the test browser, which follows the URL it was handed.
 *
 * Only under Wine (ignored on a real Windows machine too): they use the default paths and the
 * product's own Credential Manager names, which in the run's throw-away WINEPREFIX belong to
 * nobody, but on a developer's Windows would be their own sign-in.
 *
 * The tests run in order and share one signed-in world; refresh tokens are 3,000 characters, so
 * the refresh item is chunked in the Credential Manager and rotation rewrites the chunks.
 */

import denoJson from "../../deno.json" with { type: "json" };
import type { Counters, IssuedTokens } from "../cognito_server.ts";
import { CredentialManager } from "../../ffi/windows/advapi32.ts";
import { ACCESS_ITEM, REFRESH_ITEM, SERVICE } from "../../src/store/store.ts";
import { WindowsCredentialStore } from "../../src/store/windows_credential_manager.ts";
import { same } from "../store_contract.ts";
import { Child, REPO, windowsPath } from "./wine_kit.ts";
import { underWine, WHERE } from "./platform.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The world every test below shares; built by the first one. */
interface WineWorld {
  /** The test server's own `deno.exe` (`server_child.ts`, which says why it is separate). */
  server: Child;
  url: string;
  stateFile: string;
  dir: string;
  redirectUri: string;
  browserLog: string;
}

/** What the server has counted and issued so far (its state file). */
async function serverState(): Promise<{ counters: Counters; issued: IssuedTokens }> {
  return JSON.parse(await Deno.readTextFile(world!.stateFile));
}

/** How much each counter grew while `fn` ran. */
async function countDuring(fn: () => Promise<void>): Promise<Counters> {
  const before = (await serverState()).counters;
  await fn();
  const after = (await serverState()).counters;
  return {
    authorize: after.authorize - before.authorize,
    token: after.token - before.token,
    tokenByGrant: {
      authorization_code: after.tokenByGrant.authorization_code -
        before.tokenByGrant.authorization_code,
      refresh_token: after.tokenByGrant.refresh_token - before.tokenByGrant.refresh_token,
    },
    revoke: after.revoke - before.revoke,
    userInfo: after.userInfo - before.userInfo,
    logout: after.logout - before.logout,
  };
}

let world: WineWorld | undefined;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** `deno task cli`'s command with absolute Windows paths (read from deno.json). */
function cliArgs(args: string[]): string[] {
  const words = denoJson.tasks.cli.command.split(/\s+/);
  const rest = words.slice(2).map((w) =>
    w === "dist/bundle/main.js" ? `${REPO}\\dist\\bundle\\main.js` : w
  );
  return ["run", "--config", `${REPO}\\deno.json`, ...rest, ...args];
}

/** Runs the CLI as Claude Code does (pipes on every stream), in Wine's own environment. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: cliArgs(args),
    cwd: world!.dir,
    env: {
      AGENT_RUNNER_HTTP_TIMEOUT_MS: "60000",
      AGENT_RUNNER_LOGIN_TIMEOUT_MS: "240000",
      AGENT_RUNNER_LOCK_TIMEOUT_MS: "240000",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Exit 0 and exactly one token line on stdout, a token the server issued. */
async function tokenOf(run: Run): Promise<string> {
  same(run.code, 0, `exit code (stderr: ${run.stderr.trim()})`);
  if (!/^[\x21-\x7e]+\r?\n$/.test(run.stdout)) throw new Error(`stdout: ${run.stdout}`);
  const token = run.stdout.trim();
  same((await serverState()).issued.access.includes(token), true, "the printed token was issued");
  return token;
}

const store = () => new WindowsCredentialStore();

async function stored(): Promise<{ access: string | null; refresh: string | null }> {
  const access = await store().get(ACCESS_ITEM);
  const refresh = await store().get(REFRESH_ITEM);
  return {
    access: access === null ? null : JSON.parse(access).access_token,
    refresh: refresh === null ? null : JSON.parse(refresh).refresh_token,
  };
}

/** Makes the stored access token expire in `leftMs` (negative: expired), as `fault_kit.plant`. */
async function plantAccess(token: string, leftMs: number): Promise<void> {
  const now = Date.now();
  await store().set(
    ACCESS_ITEM,
    JSON.stringify({
      v: 1,
      access_token: token,
      expires_at: Math.floor((now + leftMs) / 1000),
      obtained_at: Math.floor((now + leftMs - 3_600_000) / 1000),
      lifetime_known: true,
    }),
  );
}

function e2e(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `e2e ${WHERE}: ${name}`,
    ignore: !underWine,
    // The server and the world stay up from the first test to the last.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      if (!world && !name.startsWith("login")) throw new Error("the login test did not run");
      await fn();
    },
  });
}

e2e(
  "login with a drive-letter $BROWSER starts that program; tokens land in the Credential Manager",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "ara-wine-e2e-" });
    const redirectUri = `http://127.0.0.1:${freePort()}/callback`;
    const stateFile = `${dir}\\server-state.json`;
    const server = new Child([
      "run",
      "-q",
      "-A",
      windowsPath(new URL("./server_child.ts", import.meta.url)),
      redirectUri,
      stateFile,
    ]);
    const { url } = JSON.parse(await server.waitFor(/^\{"url"/));
    world = { server, url, stateFile, dir, redirectUri, browserLog: `${dir}\\browser.log` };
    // What a user types: a Windows program by its full path, with arguments before the URL.
    const browser = `${Deno.execPath()} run -q -A ${
      windowsPath(new URL("../browser.ts", import.meta.url))
    }`;
    same(/^[A-Za-z]:\\/.test(browser), true, `a drive-letter path: ${browser}`);
    let run: Run | undefined;
    const counted = await countDuring(async () => {
      run = await cli([
        "login",
        "--tenant-url",
        "https://acme.proxy.example.com",
        "--auth-domain",
        url,
        "--client-id",
        "test-client",
        "--scope",
        "openid email profile proxy/invoke",
        "--redirect-uri",
        redirectUri,
      ], { BROWSER: browser, TEST_BROWSER_LOG: world!.browserLog });
    });
    same(run!.code, 0, `login's exit (stderr: ${run!.stderr.trim()})`);
    same(run!.stdout, "", "login prints nothing on stdout");
    same(run!.stderr.includes("Cannot start the browser"), false, `stderr: ${run!.stderr}`);
    same(run!.stderr.includes("Tokens saved in windows-credential-manager"), true, run!.stderr);
    const launches = (await Deno.readTextFile(world.browserLog)).trim().split("\n").length;
    same(launches, 1, "browser launches");
    same(counted.authorize, 1, "authorize requests");
    same(counted.tokenByGrant.authorization_code, 1, "code exchanges");
    const { issued } = await serverState();
    const { access, refresh } = await stored();
    same(access, issued.access.at(-1), "the access token in the Credential Manager");
    same(refresh, issued.refresh.at(-1), "the refresh token in the Credential Manager");
    const targets = new CredentialManager().list(`${SERVICE}/`).map((t) => t.slice(SERVICE.length));
    same(targets.includes(`/${REFRESH_ITEM}/a2`), true, `a chunked refresh item: ${targets}`);
    const config = JSON.parse(
      await Deno.readTextFile(`${Deno.env.get("APPDATA")}\\agent-runner\\config.json`),
    );
    same(config.store, "windows-credential-manager", "the store login pinned in %APPDATA%");
  },
);

e2e("token prints the stored token without a server call", async () => {
  const { access } = await stored();
  let run: Run | undefined;
  const counted = await countDuring(async () => {
    run = await cli(["token"]);
  });
  same(await tokenOf(run!), access, "the cached token");
  same(run!.stderr, "", "nothing on stderr");
  same(counted.token + counted.authorize, 0, "server requests");
});

e2e("token refreshes silently when the access token is too old to hand out", async () => {
  const before = await stored();
  await plantAccess(before.access!, 2 * 60_000);
  let token = "";
  const counted = await countDuring(async () => {
    token = await tokenOf(await cli(["token"]));
  });
  same(token === before.access, false, "a new access token");
  same(counted.tokenByGrant.refresh_token, 1, "refresh grants");
  const after = await stored();
  same(after.access, token, "the new access token is stored");
  same(after.refresh, (await serverState()).issued.refresh.at(-1), "the rotated refresh token");
  same(after.refresh === before.refresh, false, "rotation replaced the refresh token");
});

e2e("8 parallel token calls after expiry with rotation: exactly 1 refresh grant", async () => {
  const before = await stored();
  await plantAccess(before.access!, -60_000);
  let runs: Run[] = [];
  const counted = await countDuring(async () => {
    runs = await Promise.all(Array.from({ length: 8 }, () => cli(["token"])));
  });
  const tokens = await Promise.all(runs.map(tokenOf));
  same(new Set(tokens).size, 1, "every caller printed the same token");
  same(tokens[0] === before.access, false, "a new token");
  same(counted.tokenByGrant.refresh_token, 1, "refresh grants");
  same((await stored()).refresh, (await serverState()).issued.refresh.at(-1), "rotated, stored");
});

e2e(
  "doctor --json: the store check writes, reads and deletes; the files check passes",
  async () => {
    const run = await cli(["doctor", "--json"]);
    const report = JSON.parse(run.stdout) as { checks: { check: string; ok: boolean }[] };
    const check = (name: string) => report.checks.find((c) => c.check === name);
    same(
      JSON.stringify(check("store")).includes("windows-credential-manager answers"),
      true,
      run.stdout,
    );
    same(check("store")?.ok, true, "store check");
    // Windows has no POSIX modes: doctor used to call %APPDATA%\agent-runner "0666, not 0700".
    same(check("files")?.ok, true, `files check: ${JSON.stringify(check("files"))}`);
    same((await stored()).access !== null, true, "the tokens are untouched");
  },
);

e2e("logout revokes and removes every credential; token then asks for login", async () => {
  try {
    let run: Run | undefined;
    const counted = await countDuring(async () => {
      run = await cli(["logout"]);
    });
    same(run!.code, 0, `logout's exit (stderr: ${run!.stderr.trim()})`);
    same(counted.revoke, 1, "revocations");
    same(new CredentialManager().list(`${SERVICE}/`).join(), "", "nothing left, chunks included");
    const after = await cli(["token"]);
    same(after.code, 1, `token's exit after logout (stderr: ${after.stderr.trim()})`);
    same(after.stdout, "", "no token");
    same(/agent-runner-auth login/.test(after.stderr), true, after.stderr);
  } finally {
    await world!.server.kill();
    await Deno.remove(world!.dir, { recursive: true });
  }
});
