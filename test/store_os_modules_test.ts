/**
 * The macOS and Windows modules must be importable everywhere (the selector imports them lazily,
 * `deno check` covers them) and must not open any library at import or construction time: a
 * child process with NO permission imports all of them and builds every object. A `dlopen` at
 * import would fail there with NotCapable. Off their OS, the stores then fail with
 * `StoreError("unavailable")`, still without touching FFI.
 */

function assertEquals<T>(actual: T, expected: T, message = ""): void {
  if (!Object.is(actual, expected)) {
    throw new Error(`expected ${String(expected)}, got ${String(actual)} ${message}`.trim());
  }
}

Deno.test("the macOS and Windows store and lock modules import with no permission and open nothing", async () => {
  const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  const os = Deno.build.os;
  const code = [
    `const mac = await import(${url("../src/store/macos_keychain.ts")});`,
    `const win = await import(${url("../src/store/windows_credential_manager.ts")});`,
    `const lock = await import(${url("../src/lock/windows.ts")});`,
    `const sec = await import(${url("../ffi/darwin/security.ts")});`,
    `const adv = await import(${url("../ffi/windows/advapi32.ts")});`,
    `await import(${url("../ffi/windows/kernel32.ts")});`,
    `new sec.Keychain(); new adv.CredentialManager(); new lock.WindowsLockFile("C:\\\\x\\\\lock");`,
    `const stores = [new mac.MacosKeychainStore(), new win.WindowsCredentialStore()];`,
    `const own = { darwin: "macos-keychain", windows: "windows-credential-manager" }[${
      JSON.stringify(os)
    }];`,
    `for (const store of stores) {`,
    `  if (store.backend === own) { console.log("skipped"); continue; }`,
    `  try { await store.get("agent-runner-access-token"); console.log("no error"); }`,
    `  catch (e) { console.log(e.name + ":" + e.failure); }`,
    `}`,
  ].join("\n");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const { code: status, stdout, stderr } = await child.output();
  assertEquals(status, 0, new TextDecoder().decode(stderr));
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  const expected = {
    darwin: ["skipped", "StoreError:unavailable"],
    windows: ["StoreError:unavailable", "skipped"],
  }[os as "darwin" | "windows"] ?? ["StoreError:unavailable", "StoreError:unavailable"];
  assertEquals(lines.join(), expected.join(), new TextDecoder().decode(stderr));
});
