/**
 * `setup claude --base-url` / the config's `anthropic_base_url`, and what `doctor` says about
 * Claude Code's endpoint and TTL (issue 10 §4), against a local Messages API mock.
 */
import assert from "node:assert/strict";
import { secretServiceTest, World } from "./harness.ts";
import { startMessagesApi } from "./fixtures/messages_api.ts";

function line(output: string, check: string): string {
  const found = output.split("\n").find((l) => l.slice(2).startsWith(`${check}:`));
  assert.ok(found, `no "${check}" line in:\n${output}`);
  return found!;
}

async function settingsEnv(world: World): Promise<Record<string, string>> {
  return JSON.parse(await Deno.readTextFile(`${world.dir}/.claude/settings.json`)).env;
}

secretServiceTest(
  "setup claude: --base-url, then the config's anthropic_base_url, else the connect page's default",
  async () => {
    const world = await World.create();
    try {
      const flag = await world.run(["setup", "claude", "--base-url", "http://127.0.0.1:9/proxy"]);
      assert.equal(flag.code, 0, flag.stderr);
      assert.equal((await settingsEnv(world)).ANTHROPIC_BASE_URL, "http://127.0.0.1:9/proxy");

      await world.writeConfig({ anthropic_base_url: "https://acme.proxy.example.com/anthropic" });
      assert.equal((await world.run(["setup", "claude"])).code, 0);
      assert.equal(
        (await settingsEnv(world)).ANTHROPIC_BASE_URL,
        "https://acme.proxy.example.com/anthropic",
      );

      await world.writeConfig({});
      assert.equal((await world.run(["setup", "claude"])).code, 0);
      assert.equal(
        (await settingsEnv(world)).ANTHROPIC_BASE_URL,
        "https://acme.proxy.example.com/anthropic/v1",
      );

      const plain = await world.run(["setup", "claude", "--base-url", "http://proxy.example.com"]);
      assert.equal(plain.code, 2);
      assert.match(
        plain.stderr,
        /^agent-runner-auth: setup: --base-url must use https \(http only for loopback\)\n$/,
      );
      const query = await world.run([
        "setup",
        "claude",
        "--base-url",
        "https://p.example.com/?a=1",
      ]);
      assert.equal(query.code, 2);
      assert.match(query.stderr, /--base-url must not carry a query/);

      await world.writeConfig({ anthropic_base_url: "ftp://proxy.example.com" });
      const bad = await world.run(["setup", "claude"]);
      assert.equal(bad.code, 3);
      assert.match(bad.stderr, /config\.json: field "anthropic_base_url" must use https/);
    } finally {
      await world.close();
    }
  },
);

secretServiceTest(
  "doctor: the TTL from Claude's settings env, the URL Claude posts to, 401 vs 404 without a token",
  async () => {
    const world = await World.create();
    const api = startMessagesApi("/anthropic");
    try {
      // The route exists: the unauthenticated POST is answered 401.
      assert.equal(
        (await world.run(["setup", "claude", "--base-url", `${api.url}/anthropic`])).code,
        0,
      );
      const good = await world.run(["doctor"], { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "60000" });
      assert.match(
        line(good.stdout, "token lifetime"),
        /CLAUDE_CODE_API_KEY_HELPER_TTL_MS=3300000 in .*\/\.claude\/settings\.json/,
        "the settings env wins over the shell, as in Claude Code",
      );
      assert.match(
        line(good.stdout, "claude endpoint"),
        new RegExp(
          `^✓ claude endpoint: Claude Code posts to ${api.url}/anthropic/v1/messages\\?beta=true .*answers 401 without a token: the route exists`,
        ),
      );
      assert.match(line(good.stdout, "claude ANTHROPIC_BASE_URL"), /^✗/, "config not told yet");
      await world.writeConfig({ anthropic_base_url: `${api.url}/anthropic` });
      assert.match(
        line((await world.run(["doctor"])).stdout, "claude ANTHROPIC_BASE_URL"),
        /^✓/,
        "matches the config's anthropic_base_url",
      );

      // The connect page's default, where this proxy serves no such path: 404.
      await world.writeConfig({ tenant_url: api.url });
      assert.equal((await world.run(["setup", "claude"])).code, 0);
      const wrong = await world.run(["doctor"]);
      assert.equal(wrong.code, 1);
      assert.match(
        line(wrong.stdout, "claude endpoint"),
        new RegExp(
          `^✗ claude endpoint: Claude Code posts to ${api.url}/anthropic/v1/v1/messages\\?beta=true .*answers 404.*fix: agent-runner-auth setup claude --base-url URL`,
        ),
      );
      const posts = api.requests.filter((r) => r.method === "POST");
      assert.ok(posts.length >= 2);
      assert.ok(posts.every((r) => r.apiKey === null && r.authorization === null), "never a token");
    } finally {
      await api.close();
      await world.close();
    }
  },
);
