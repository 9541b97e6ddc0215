/**
 * `SHA256SUMS` in `sha256sum` format (`<hex>  <name>`, sorted by name), so
 * `sha256sum -c SHA256SUMS` verifies a download and the install script, the Homebrew formula and
 * the winget manifests all read checksums from one file.
 *
 * CLI: `deno run -A dist/checksums.ts DIR` (re)writes `DIR/SHA256SUMS` over every release
 * artifact in DIR: archives, `.deb` files and `install.sh` (not the bare binaries).
 *
 * @module
 */

/** File names that are release artifacts and get a checksum line. */
export const RELEASE_ARTIFACT = /^(agent-runner-auth[-_].+\.(tar\.gz|zip|deb)|install\.sh)$/;

/** Lowercase hex SHA-256 of `data`. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `sha256sum` text for `sums` (name → hex), sorted by name. */
export function formatSums(sums: Map<string, string>): string {
  return [...sums.keys()].sort().map((name) => `${sums.get(name)}  ${name}\n`).join("");
}

/**
 * Parses `sha256sum` output (text `  ` or binary ` *` separator) into name → lowercase hex.
 * Throws on a malformed line, naming it, rather than skipping it.
 */
export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const m = /^([0-9a-fA-F]{64}) [ *](\S.*)$/.exec(line);
    if (!m) throw new Error(`SHA256SUMS line ${i + 1} is not "<sha256>  <file>": ${line}`);
    sums.set(m[2], m[1].toLowerCase());
  });
  return sums;
}

/** `sums[name]`, or a one-line error naming the file that lacks it. */
export function requireSum(sums: Map<string, string>, name: string, source: string): string {
  const hex = sums.get(name);
  if (!hex) throw new Error(`${source} has no entry for ${name}`);
  return hex;
}

/** Reads and parses a SHA256SUMS file. */
export async function readSums(path: string): Promise<Map<string, string>> {
  return parseSums(await Deno.readTextFile(path));
}

/**
 * Hashes `names` in `dir` (default: every release artifact there) and writes `dir/SHA256SUMS`;
 * returns name → hex.
 */
export async function writeSha256Sums(
  dir: string,
  names?: Iterable<string>,
): Promise<Map<string, string>> {
  const files: string[] = names ? [...names] : [];
  if (!names) {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && RELEASE_ARTIFACT.test(entry.name)) files.push(entry.name);
    }
  }
  const sums = new Map<string, string>();
  for (const name of files) sums.set(name, await sha256Hex(await Deno.readFile(`${dir}/${name}`)));
  await Deno.writeTextFile(`${dir}/SHA256SUMS`, formatSums(sums));
  return sums;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir || Deno.args.length !== 1) {
    console.error("usage: deno run -A dist/checksums.ts DIR");
    Deno.exit(2);
  }
  const sums = await writeSha256Sums(dir);
  console.error(`${dir}/SHA256SUMS: ${sums.size} files`);
}
