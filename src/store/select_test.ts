import { validateConfig } from "../config/config.ts";
import { ConfigError, StoreError } from "../errors.ts";
import { same } from "../../test/store_contract.ts";
import { EncryptedFileStore } from "./encrypted_file.ts";
import {
  type ConcreteStoreName,
  openStore,
  type Probe,
  resolveStore,
  type SelectDeps,
  STORE_NAMES,
  storeChoice,
} from "./select.ts";
import { ACCESS_ITEM } from "./store.ts";

const CONFIG_PATH = "/home/u/.config/agent-runner/config.json";

function config(store?: string, profile = "default") {
  const fields = {
    tenant_url: "https://acme.proxy.example.com",
    auth_domain: "auth.example.com",
    client_id: "c",
    ...(store === undefined ? {} : { store }),
  };
  const raw = profile === "default" ? fields : { profiles: { [profile]: fields } };
  return validateConfig(raw, CONFIG_PATH, profile);
}

const OK: Probe = { ok: true };
const NO_SS: Probe = {
  ok: false,
  why: "No Secret Service is running: there is no D-Bus session bus",
};
const NO_PASS: Probe = {
  ok: false,
  why: "pass is not installed",
  fix: "install pass and gnupg (apt install pass) and run `pass init <gpg-id>`",
};

interface Row {
  what: string;
  env?: string;
  config?: string;
  os: typeof Deno.build.os;
  ss?: Probe;
  pass?: Probe;
  /** The backend, or a pattern the one-line error must match. */
  expect: ConcreteStoreName | RegExp;
  /** Probes that must not run (the cached path must not pay for them). */
  noProbe?: ("ss" | "pass")[];
}

const TABLE: Row[] = [
  { what: "auto on Linux, Secret Service answers", os: "linux", ss: OK, expect: "secret-service" },
  {
    what: "auto on Linux, no Secret Service, pass ready",
    os: "linux",
    ss: NO_SS,
    pass: OK,
    expect: "pass",
  },
  {
    what: "auto on Linux, neither: one line with every option",
    os: "linux",
    ss: NO_SS,
    pass: NO_PASS,
    expect:
      /^No token store is available \(Secret Service: No Secret Service is running: there is no D-Bus session bus; pass: pass is not installed\): start an unlocked Secret Service .*pass init <gpg-id>.*AGENT_RUNNER_STORE=encrypted-file for an encrypted file in \/cfg \(weaker than a keychain\)$/,
  },
  {
    what: "auto on FreeBSD behaves like Linux",
    os: "freebsd",
    ss: NO_SS,
    pass: OK,
    expect: "pass",
  },
  {
    what: "auto on macOS: the Keychain, no probe",
    os: "darwin",
    expect: "macos-keychain",
    noProbe: ["ss", "pass"],
  },
  {
    what: "auto on Windows: Credential Manager, no probe",
    os: "windows",
    expect: "windows-credential-manager",
    noProbe: ["ss", "pass"],
  },
  {
    what: "config auto is auto",
    config: "auto",
    os: "linux",
    ss: NO_SS,
    pass: OK,
    expect: "pass",
  },
  {
    what: "pinned secret-service opens without any probe",
    config: "secret-service",
    os: "linux",
    expect: "secret-service",
    noProbe: ["ss", "pass"],
  },
  {
    what: "pinned pass that is ready",
    config: "pass",
    os: "linux",
    pass: OK,
    expect: "pass",
    noProbe: ["ss"],
  },
  {
    what: "pinned pass now unavailable: an error naming it, no switch to the Secret Service",
    config: "pass",
    os: "linux",
    ss: OK,
    pass: NO_PASS,
    expect:
      /^The token store "pass" \(pinned by field "store" in \/home\/u\/\.config\/agent-runner\/config\.json\) is unavailable: pass is not installed; install pass .*, or choose another store with AGENT_RUNNER_STORE$/,
    noProbe: ["ss"],
  },
  {
    what: "encrypted-file only by name, on any OS, no probe",
    env: "encrypted-file",
    os: "linux",
    expect: "encrypted-file",
    noProbe: ["ss", "pass"],
  },
  {
    what: "encrypted-file on Windows",
    env: "encrypted-file",
    os: "windows",
    expect: "encrypted-file",
  },
  {
    what: "AGENT_RUNNER_STORE beats the pinned config",
    env: "pass",
    config: "secret-service",
    os: "linux",
    pass: OK,
    expect: "pass",
  },
  {
    what: "an empty AGENT_RUNNER_STORE is unset",
    env: "",
    config: "secret-service",
    os: "linux",
    expect: "secret-service",
  },
  {
    what: "macos-keychain on Linux",
    env: "macos-keychain",
    os: "linux",
    expect:
      /^The token store "macos-keychain" \(set by AGENT_RUNNER_STORE\) works only on macOS, not on linux; use one of secret-service, pass, encrypted-file, or auto$/,
  },
  {
    what: "windows-credential-manager pinned on macOS",
    config: "windows-credential-manager",
    os: "darwin",
    expect:
      /works only on Windows, not on darwin; use one of macos-keychain, pass, encrypted-file, or auto$/,
  },
  {
    what: "secret-service on Windows",
    env: "secret-service",
    os: "windows",
    expect: /works only on Linux and other freedesktop systems, not on windows/,
  },
  {
    what: "pass on Windows",
    env: "pass",
    os: "windows",
    expect: /"pass" \(set by AGENT_RUNNER_STORE\) works only on Linux, macOS and other Unixes/,
  },
];

for (const row of TABLE) {
  Deno.test(`select: ${row.what}`, async () => {
    const env = new Map<string, string>();
    if (row.env !== undefined) env.set("AGENT_RUNNER_STORE", row.env);
    const calls: string[] = [];
    const deps: SelectDeps = {
      os: row.os,
      secretService: () => {
        calls.push("ss");
        return Promise.resolve(row.ss ?? { ok: false, why: "not configured in this row" });
      },
      pass: () => {
        calls.push("pass");
        return row.pass ?? { ok: false, why: "not configured in this row" };
      },
      configDir: "/cfg",
    };
    let outcome: ConcreteStoreName | Error;
    try {
      outcome = await resolveStore(storeChoice(config(row.config), env), deps);
    } catch (error) {
      outcome = error as Error;
    }
    if (typeof row.expect === "string") {
      same(outcome, row.expect, "backend");
    } else {
      if (!(outcome instanceof StoreError)) {
        throw new Error(`Expected a StoreError, got ${outcome}`);
      }
      same(outcome.failure, "unavailable", "failure");
      same(row.expect.test(outcome.message), true, `message: ${outcome.message}`);
      same(outcome.message.includes("\n"), false, "one line");
    }
    for (const probe of row.noProbe ?? []) same(calls.includes(probe), false, `${probe} probed`);
  });
}

Deno.test("select: an unknown AGENT_RUNNER_STORE is a ConfigError naming it and the valid names", () => {
  let thrown: unknown;
  try {
    storeChoice(config("secret-service"), new Map([["AGENT_RUNNER_STORE", "keychain"]]));
  } catch (error) {
    thrown = error;
  }
  if (!(thrown instanceof ConfigError)) throw new Error(`Expected ConfigError, got ${thrown}`);
  same(
    thrown.message,
    'AGENT_RUNNER_STORE="keychain" is not a token store; use one of auto, macos-keychain, ' +
      "secret-service, pass, windows-credential-manager, encrypted-file",
    "message",
  );
});

Deno.test("select: the choice names its source, profiles included", () => {
  same(storeChoice(null, new Map()).source, "default", "no config");
  same(storeChoice(config("pass"), new Map()).source, `field "store" in ${CONFIG_PATH}`, "config");
  same(
    storeChoice(config("pass", "work"), new Map()).source,
    `field "profiles.work.store" in ${CONFIG_PATH}`,
    "profile",
  );
  same(
    storeChoice(config("pass"), new Map([["AGENT_RUNNER_STORE", "encrypted-file"]])).name,
    "encrypted-file",
    "env wins",
  );
});

Deno.test("select: the config file accepts exactly STORE_NAMES", () => {
  for (const name of STORE_NAMES) same(config(name).config.store, name, name);
  for (const name of ["memory", "keychain", "plaintext", "Auto"]) {
    let thrown: unknown;
    try {
      config(name);
    } catch (error) {
      thrown = error;
    }
    same(thrown instanceof ConfigError, true, `"${name}" refused`);
  }
});

Deno.test("select: openStore opens the encrypted file in AGENT_RUNNER_CONFIG_DIR with the warning hook", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ara-select-" });
  try {
    const lines: string[] = [];
    const env = new Map([
      ["AGENT_RUNNER_STORE", "encrypted-file"],
      ["AGENT_RUNNER_CONFIG_DIR", dir],
    ]);
    const store = await openStore(config("secret-service"), env, {
      onWarning: (line) => lines.push(line),
    });
    same(store instanceof EncryptedFileStore, true, "an EncryptedFileStore");
    same(store.backend, "encrypted-file", "backend");
    await store.set(ACCESS_ITEM, "v");
    same((store as EncryptedFileStore).keyPath, `${dir}/store.key`, "key beside the config");
    same(lines.length, 1, "one warning");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("select: openStore never probes for a pinned store (deps that throw if asked)", async () => {
  const boom = (): never => {
    throw new Error("probed");
  };
  const store = await openStore(config("secret-service"), new Map(), {
    deps: { os: "linux", secretService: boom, pass: boom },
  });
  same(store.backend, "secret-service", "backend");
});
