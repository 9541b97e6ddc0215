/**
 * Picks the token store (SPEC.md §4, issue 3), after git-credential-manager's store selector:
 *
 * 1. The name: `AGENT_RUNNER_STORE`, else the config's `store` (which `login` pins to the
 *    backend that worked), else `auto`. Names: {@linkcode STORE_NAMES}; anything else is a
 *    `ConfigError` naming the variable or field and listing the valid names.
 * 2. A named backend is used as named. It is checked only where that is free: the OS it needs,
 *    and for `pass` that it is installed and initialized (a few `stat`s, no child process). A
 *    named backend that is unavailable is an error naming it: there is never a silent switch to
 *    another store, and never a plaintext or file fallback. In particular a pinned
 *    `secret-service` is opened without any probe, so the cached `token` path pays nothing here.
 * 3. `auto`: macOS → Keychain; Windows → Credential Manager; elsewhere → the Secret Service if it
 *    answers a lookup (a missing probe item: never prompts, bounded by the store timeout), else
 *    `pass` if installed and initialized, else one error line listing every option and how to
 *    enable it. The encrypted file is never chosen by `auto`: only by name.
 *
 * Backends are imported lazily so no other OS's library, no npm module and no unused backend is
 * loaded (STYLE.md §3, SPEC.md §8); except the Secret Service's module, imported statically: it
 * is the store the cached `token` call opens on Linux, its own library (libsecret) is still loaded
 * only when first needed, and a lazy import of it cost that call one more module to load after
 * start-up (issue 14).
 *
 * @module
 */

import type { LoadedConfig } from "../config/config.ts";
import { type Env, resolvePaths } from "../config/paths.ts";
import { ConfigError, StoreError } from "../errors.ts";
import { STORE_NAMES, type StoreName, type TokenStore } from "./store.ts";
import { PROBE_ITEM, SecretServiceStore } from "./secret_service.ts";

export { STORE_NAMES, type StoreName };

/** A backend the selector can open: every store name but `auto`. */
export type ConcreteStoreName = Exclude<StoreName, "auto">;

/** Which store was asked for, and by whom (for error messages). */
export interface StoreChoice {
  name: StoreName;
  /** `AGENT_RUNNER_STORE`, `field "store" in <file>`, or `default`. */
  source: string;
}

/** Outcome of an availability probe; `why`/`fix` are one-line fragments. */
export type Probe = { ok: true } | { ok: false; why: string; fix?: string };

/** What {@linkcode resolveStore} needs from the machine; tests pass fakes. */
export interface SelectDeps {
  os: typeof Deno.build.os;
  /** `auto` only: whether a Secret Service answers (see {@linkcode probeSecretService}). */
  secretService(): Promise<Probe>;
  /** Whether `pass` is installed and its store initialized (no child process). */
  pass(): Probe | Promise<Probe>;
  /** Where the encrypted file store would live, for the `auto` failure message. */
  configDir?: string;
}

/** Options for {@linkcode openStore}. */
export interface OpenStoreOptions {
  /**
   * Receives a store's one-line warning (the encrypted file store warns, once, that it is
   * weaker than a keychain). Default: the store prints it on stderr.
   */
  onWarning?: (line: string) => void;
  /**
   * For `login`: under `auto`, accept the Secret Service only if it can also *write* (its
   * `assertUsable` stores and removes a probe item, which may raise an unlock prompt). A lookup
   * answers even from a locked or never-created keyring, and the backend chosen at login is
   * pinned, so login should pin one that works. Costs a store and a clear (~30–60 ms).
   */
  verify?: boolean;
  /** Test seam: the machine checks. Default: the real OS and probes. */
  deps?: Partial<SelectDeps>;
}

/**
 * Opens the store named by `AGENT_RUNNER_STORE`, the config's `store`, or `auto` (module doc).
 *
 * Needs `--allow-env`; then what the chosen backend needs: Secret Service `--allow-ffi`
 * (unscoped), pass `--allow-run --allow-read`, encrypted file `--allow-read --allow-write`,
 * macOS/Windows `--allow-ffi`. Throws `ConfigError` (bad name) or `StoreError("unavailable")`.
 */
export async function openStore(
  loaded: LoadedConfig | null,
  env: Env = Deno.env,
  options: OpenStoreOptions = {},
): Promise<TokenStore> {
  const choice = storeChoice(loaded, env);
  let probed: TokenStore | undefined;
  const deps: SelectDeps = {
    os: Deno.build.os,
    secretService: async () => {
      const result = await probeSecretService(options.verify ?? false);
      if (result.ok) probed = result.store;
      return result.ok ? { ok: true } : result;
    },
    pass: async () => {
      const { passAvailability } = await import("./pass.ts");
      return passAvailability((name) => env.get(name));
    },
    configDir: safeConfigDir(env),
    ...options.deps,
  };
  const name = await resolveStore(choice, deps);
  if (name === "secret-service" && probed) return probed;
  return await openBackend(name, env, options.onWarning);
}

/**
 * The store asked for: `AGENT_RUNNER_STORE` (non-empty) > the config's `store` > `auto`.
 * Throws `ConfigError` naming the variable or field for a name not in {@linkcode STORE_NAMES}.
 */
export function storeChoice(loaded: LoadedConfig | null, env: Env = Deno.env): StoreChoice {
  const fromEnv = env.get("AGENT_RUNNER_STORE");
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!isStoreName(fromEnv)) {
      throw new ConfigError(
        `AGENT_RUNNER_STORE=${JSON.stringify(fromEnv.slice(0, 60))} is not a token store; ` +
          `use one of ${STORE_NAMES.join(", ")}`,
      );
    }
    return { name: fromEnv, source: "AGENT_RUNNER_STORE" };
  }
  const fromConfig = loaded?.config.store;
  if (fromConfig !== undefined && fromConfig !== "") {
    const field = loaded!.profile === "default" ? "store" : `profiles.${loaded!.profile}.store`;
    if (!isStoreName(fromConfig)) {
      // validateConfig already refuses this; kept so a hand-built LoadedConfig cannot slip by.
      throw new ConfigError(
        `${loaded!.path}: field "${field}" must be one of ${STORE_NAMES.join(", ")}; ` +
          `got ${JSON.stringify(fromConfig.slice(0, 60))}`,
      );
    }
    return { name: fromConfig, source: `field "${field}" in ${loaded!.path}` };
  }
  return { name: "auto", source: "default" };
}

/** Whether `name` is one of {@linkcode STORE_NAMES}. */
export function isStoreName(name: string): name is StoreName {
  return (STORE_NAMES as readonly string[]).includes(name);
}

/**
 * Turns a choice into the backend to open, probing only what the module doc says. Throws
 * `StoreError("unavailable")` naming the store and where it was chosen.
 */
export async function resolveStore(
  choice: StoreChoice,
  deps: SelectDeps,
): Promise<ConcreteStoreName> {
  const { name, source } = choice;
  if (name === "auto") return await resolveAuto(deps);

  const needs = OS_OF[name];
  if (needs && !needs.test(deps.os)) {
    throw new StoreError(
      "unavailable",
      `The token store "${name}" (${from(source)}) works only on ${needs.label}, not on ` +
        `${deps.os}; use one of ${usableOn(deps.os).join(", ")}, or auto`,
    );
  }
  if (name === "pass") {
    const pass = await deps.pass();
    if (!pass.ok) {
      throw new StoreError(
        "unavailable",
        `The token store "pass" (${from(source)}) is unavailable: ${pass.why}; ` +
          `${pass.fix ? `${pass.fix}, ` : ""}or choose another store with AGENT_RUNNER_STORE`,
      );
    }
  }
  return name;
}

async function resolveAuto(deps: SelectDeps): Promise<ConcreteStoreName> {
  if (deps.os === "darwin") return "macos-keychain";
  if (deps.os === "windows") return "windows-credential-manager";
  const secretService = await deps.secretService();
  if (secretService.ok) return "secret-service";
  const pass = await deps.pass();
  if (pass.ok) return "pass";
  const where = deps.configDir ? ` in ${deps.configDir}` : "";
  throw new StoreError(
    "unavailable",
    `No token store is available (Secret Service: ${secretService.why}; pass: ${pass.why}): ` +
      `start an unlocked Secret Service (gnome-keyring, KWallet, KeePassXC) in this session, ` +
      `or install pass and run \`pass init <gpg-id>\`, or set AGENT_RUNNER_STORE=encrypted-file ` +
      `for an encrypted file${where} (weaker than a keychain)`,
  );
}

/**
 * The `auto` probe of the Secret Service: a lookup of an item that never exists (so no unlock
 * prompt), bounded by the store timeout inside the libsecret wrapper. "No bus", "no provider"
 * and a hung service fail it; a locked keyring still answers (a lookup cannot tell), which is
 * why `verify` adds a write probe.
 *
 * Needs `--allow-ffi` (unscoped) and `--allow-env`.
 */
export async function probeSecretService(
  verify: boolean,
): Promise<{ ok: true; store: TokenStore } | { ok: false; why: string }> {
  try {
    const store = new SecretServiceStore();
    await store.get(PROBE_ITEM);
    if (verify) await store.assertUsable();
    return { ok: true, store };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // The wrapper's messages end in "; <how to get one>": keep the diagnosis only.
    return { ok: false, why: message.split("; ")[0].replace(/\s*\n\s*/g, " ") };
  }
}

/**
 * Constructs a backend by name, importing its module only now. For `pass`, variables of `env`
 * that steer pass are handed to the child when `env` is not the process environment.
 */
export async function openBackend(
  name: ConcreteStoreName,
  env: Env = Deno.env,
  onWarning?: (line: string) => void,
): Promise<TokenStore> {
  switch (name) {
    case "secret-service":
      return new SecretServiceStore();
    case "pass": {
      const { PassStore } = await import("./pass.ts");
      if (env === Deno.env) return new PassStore();
      const passEnv: Record<string, string> = {};
      for (const key of PASS_ENV) {
        const value = env.get(key);
        if (value !== undefined) passEnv[key] = value;
      }
      return new PassStore({ env: passEnv });
    }
    case "encrypted-file": {
      const { EncryptedFileStore } = await import("./encrypted_file.ts");
      return new EncryptedFileStore({ dir: resolvePaths(env).dir, onWarning });
    }
    case "macos-keychain": {
      const { MacosKeychainStore } = await import("./macos_keychain.ts");
      return new MacosKeychainStore();
    }
    case "windows-credential-manager": {
      const { WindowsCredentialStore } = await import("./windows_credential_manager.ts");
      return new WindowsCredentialStore();
    }
  }
}

/** The variables that steer pass and gpg. */
const PASS_ENV = ["PATH", "HOME", "PASSWORD_STORE_DIR", "GNUPGHOME", "PASSWORD_STORE_GPG_OPTS"];

/** OS restrictions of the named backends (none for pass' Unixes and the encrypted file). */
const OS_OF: Partial<Record<ConcreteStoreName, { test(os: string): boolean; label: string }>> = {
  "macos-keychain": { test: (os) => os === "darwin", label: "macOS" },
  "windows-credential-manager": { test: (os) => os === "windows", label: "Windows" },
  "secret-service": {
    test: (os) => os !== "windows" && os !== "darwin",
    label: "Linux and other freedesktop systems",
  },
  "pass": { test: (os) => os !== "windows", label: "Linux, macOS and other Unixes" },
};

function usableOn(os: string): ConcreteStoreName[] {
  return STORE_NAMES.filter((n): n is ConcreteStoreName => n !== "auto")
    .filter((n) => OS_OF[n]?.test(os) ?? true);
}

function from(source: string): string {
  return source === "AGENT_RUNNER_STORE" ? "set by AGENT_RUNNER_STORE" : `pinned by ${source}`;
}

function safeConfigDir(env: Env): string | undefined {
  try {
    return resolvePaths(env).dir;
  } catch {
    return undefined;
  }
}
