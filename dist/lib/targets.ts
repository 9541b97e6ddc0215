/**
 * The five release targets and every name derived from them (SPEC.md §6): the compiled
 * binary, its archive, the Debian architecture. Every packaging script and the install script's
 * tests take names from here, so a rename happens in one place.
 *
 * @module
 */

/** A `deno compile --target` triple this project ships. */
export type Target =
  | "x86_64-unknown-linux-gnu"
  | "aarch64-unknown-linux-gnu"
  | "x86_64-apple-darwin"
  | "aarch64-apple-darwin"
  | "x86_64-pc-windows-msvc";

/** What packaging needs to know about one target. */
export interface TargetInfo {
  target: Target;
  os: "linux" | "darwin" | "windows";
  arch: "x86_64" | "aarch64";
  /** Executable format `deno compile` injects into: checked against a given `denort`. */
  format: "elf" | "macho" | "pe";
  /** Debian architecture, for the Linux targets only. */
  debArch?: "amd64" | "arm64";
}

/** All targets, in release order. */
export const TARGETS: readonly TargetInfo[] = [
  {
    target: "x86_64-unknown-linux-gnu",
    os: "linux",
    arch: "x86_64",
    format: "elf",
    debArch: "amd64",
  },
  {
    target: "aarch64-unknown-linux-gnu",
    os: "linux",
    arch: "aarch64",
    format: "elf",
    debArch: "arm64",
  },
  { target: "x86_64-apple-darwin", os: "darwin", arch: "x86_64", format: "macho" },
  { target: "aarch64-apple-darwin", os: "darwin", arch: "aarch64", format: "macho" },
  { target: "x86_64-pc-windows-msvc", os: "windows", arch: "x86_64", format: "pe" },
];

/** The command name users type, and the file name inside every archive (plus `.exe`). */
export const COMMAND = "agent-runner-auth";

/** Looks a target up; throws a one-line error naming the valid ones. */
export function targetInfo(target: string): TargetInfo {
  const info = TARGETS.find((t) => t.target === target);
  if (!info) {
    throw new Error(
      `Unknown target "${target}": expected one of ${TARGETS.map((t) => t.target).join(", ")}`,
    );
  }
  return info;
}

/** `.exe` on Windows, nothing elsewhere. */
export function exeSuffix(target: Target): string {
  return targetInfo(target).os === "windows" ? ".exe" : "";
}

/** `agent-runner-auth-0.1.0-x86_64-unknown-linux-gnu[.exe]`: what `deno compile` writes. */
export function binaryName(version: string, target: Target): string {
  return `${COMMAND}-${version}-${target}${exeSuffix(target)}`;
}

/** `agent-runner-auth-0.1.0-<target>.tar.gz`, or `.zip` for Windows. */
export function archiveName(version: string, target: Target): string {
  const ext = targetInfo(target).os === "windows" ? "zip" : "tar.gz";
  return `${COMMAND}-${version}-${target}.${ext}`;
}

/** The binary's name inside the archive: `agent-runner-auth` or `agent-runner-auth.exe`. */
export function archivedBinaryName(target: Target): string {
  return `${COMMAND}${exeSuffix(target)}`;
}

/** The target `deno` itself runs on (e.g. `x86_64-unknown-linux-gnu`), if it is one of ours. */
export function hostTarget(): Target | undefined {
  return TARGETS.find((t) => t.target === Deno.build.target)?.target;
}

/** `DENORT_BIN_X86_64_UNKNOWN_LINUX_GNU`: the per-target runtime override. */
export function denortEnvName(target: Target): string {
  return `DENORT_BIN_${target.toUpperCase().replaceAll("-", "_")}`;
}
