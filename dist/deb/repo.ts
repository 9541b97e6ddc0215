/**
 * Builds (or updates) the signed apt repository served as `deb https://apt.agent-runner.io
 * stable main`, with `apt-ftparchive` and gpg:
 *
 *   <repo>/pool/main/a/agent-runner-auth/*.deb        every version ever published
 *   <repo>/dists/stable/main/binary-{amd64,arm64}/Packages{,.gz}
 *   <repo>/dists/stable/Release                       checksums of the indexes
 *   <repo>/dists/stable/InRelease                     Release, clearsigned
 *   <repo>/dists/stable/Release.gpg                   detached signature (older apt)
 *   <repo>/agent-runner-auth.gpg / .asc               the public key for `signed-by=`
 *
 * New `.deb` files are added to the pool (a file already there with other bytes is refused:
 * apt caches by hash, so a rebuilt package needs a new Debian revision), then every index is
 * regenerated from the pool, so publishing is "sync the pool down, run this, sync up".
 *
 * `deno run -A dist/deb/repo.ts --repo DIR --key KEYID [--deb FILE ...]`. gpg uses
 * `$GNUPGHOME` (the release workflow imports `APT_GPG_KEY` there); `APT_GPG_PASSPHRASE`, when
 * set, unlocks the key. The signature is checked with gpgv against the exported key before the
 * script succeeds.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { COMMAND } from "../lib/targets.ts";

/** The suite and component of the one distribution we publish. */
export const SUITE = "stable";
export const COMPONENT = "main";
/** Every architecture the Release file announces (an empty index is fine). */
export const ARCHES = ["amd64", "arm64"] as const;

/** Release lists SHA-256 and SHA-512 only: apt needs neither MD5 nor SHA-1. */
const STRONG_HASHES = ["-o", "APT::FTPArchive::MD5=false", "-o", "APT::FTPArchive::SHA1=false"];

async function exec(
  cmd: string,
  args: string[],
  opts: { cwd?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<Uint8Array> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return out.stdout;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Inputs of {@linkcode buildRepo}. */
export interface RepoInput {
  repo: string;
  /** gpg key id or fingerprint of the signing key (in `$GNUPGHOME`). */
  key: string;
  debs: string[];
  /** Passphrase of the key, if it has one. */
  passphrase?: string;
  /** gpg home (default `$GNUPGHOME`, else ~/.gnupg). */
  gnupgHome?: string;
}

/** Adds `debs` to the pool, regenerates the indexes, signs the Release file. */
export async function buildRepo(
  { repo, key, debs, passphrase, gnupgHome }: RepoInput,
): Promise<void> {
  const env: Record<string, string> | undefined = gnupgHome ? { GNUPGHOME: gnupgHome } : undefined;
  const pool = `${repo}/pool/${COMPONENT}/${COMMAND[0]}/${COMMAND}`;
  await Deno.mkdir(pool, { recursive: true });
  for (const deb of debs) {
    const name = deb.split("/").pop()!;
    if (!/^agent-runner-auth_[^_]+_(amd64|arm64)\.deb$/.test(name)) {
      throw new Error(`Not one of our packages: ${name}`);
    }
    const dest = `${pool}/${name}`;
    const exists = await Deno.stat(dest).then(() => true, () => false);
    if (exists && !(await sameBytes(deb, dest))) {
      throw new Error(
        `${dest} is already published with other content: bump the Debian revision (--revision)`,
      );
    }
    if (!exists) await Deno.copyFile(deb, dest);
  }

  const dist = `${repo}/dists/${SUITE}`;
  await Deno.remove(dist, { recursive: true }).catch(() => {});
  for (const arch of ARCHES) {
    const dir = `${dist}/${COMPONENT}/binary-${arch}`;
    await Deno.mkdir(dir, { recursive: true });
    // Run from the repo root so Filename: fields are pool/... paths relative to it.
    const packages = await exec(
      "apt-ftparchive",
      ["--arch", arch, "packages", `pool/${COMPONENT}`],
      {
        cwd: repo,
      },
    );
    await Deno.writeFile(`${dir}/Packages`, packages);
    await Deno.writeFile(
      `${dir}/Packages.gz`,
      await exec("gzip", ["-9n", "-c", `${dir}/Packages`]),
    );
  }
  const field = (
    name: string,
    value: string,
  ) => ["-o", `APT::FTPArchive::Release::${name}=${value}`];
  const release = await exec("apt-ftparchive", [
    ...STRONG_HASHES,
    ...field("Origin", COMMAND),
    ...field("Label", COMMAND),
    ...field("Suite", SUITE),
    ...field("Codename", SUITE),
    ...field("Architectures", ARCHES.join(" ")),
    ...field("Components", COMPONENT),
    ...field("Description", `${COMMAND} releases`),
    "release",
    dist,
  ]);
  await Deno.writeFile(`${dist}/Release`, release);

  const sign = (args: string[]) =>
    exec("gpg", [
      "--batch",
      "--yes",
      "--local-user",
      key,
      "--digest-algo",
      "SHA512",
      ...(passphrase === undefined ? [] : ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]),
      ...args,
    ], { env, stdin: passphrase === undefined ? undefined : `${passphrase}\n` });
  await sign(["--clearsign", "-o", `${dist}/InRelease`, `${dist}/Release`]);
  await sign(["--armor", "--detach-sign", "-o", `${dist}/Release.gpg`, `${dist}/Release`]);

  const keyring = `${repo}/${COMMAND}.gpg`;
  await Deno.writeFile(keyring, await exec("gpg", ["--batch", "--export", key], { env }));
  await Deno.writeFile(
    `${repo}/${COMMAND}.asc`,
    await exec("gpg", ["--batch", "--armor", "--export", key], { env }),
  );
  // What apt will do, before anyone downloads it.
  await exec("gpgv", ["--keyring", keyring, `${dist}/InRelease`], { env });
  await exec("gpgv", ["--keyring", keyring, `${dist}/Release.gpg`, `${dist}/Release`], { env });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      repo: { type: "string" },
      key: { type: "string" },
      deb: { type: "string", multiple: true },
    },
    strict: true,
  });
  try {
    if (!values.repo || !values.key) {
      throw new Error("usage: repo.ts --repo DIR --key KEYID [--deb FILE ...]");
    }
    await buildRepo({
      repo: values.repo,
      key: values.key,
      debs: values.deb ?? [],
      passphrase: Deno.env.get("APT_GPG_PASSPHRASE") || undefined,
    });
    console.error(`signed ${values.repo}/dists/${SUITE}/InRelease`);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
