/**
 * Product metadata shared by the Homebrew formula, the winget manifests and the Debian
 * package, so the channels describe the same thing. The version is not here: it lives only in
 * `deno.json` ({@linkcode projectVersion}).
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };

/** GitHub `owner/name` of the project: release URLs are built from it. */
export const REPO = "copebit/agent-runner-auth";

/** Project home page. */
export const HOMEPAGE = `https://github.com/${REPO}`;

/** Default base for release downloads; `<base>/download/v<version>/<file>`. */
export const RELEASES_BASE = `${HOMEPAGE}/releases`;

/** One line, no trailing period (Homebrew's `desc` and Debian's synopsis rules). */
export const SUMMARY = "OAuth tokens for Claude Code's apiKeyHelper, kept in the OS keychain";

/** A paragraph for the longer descriptions (Debian, winget). */
export const DESCRIPTION =
  "agent-runner-auth links Claude Code's apiKeyHelper hook to a tenant's OAuth sign-in " +
  "(AWS Cognito hosted UI). `agent-runner-auth token` prints a valid access token on stdout: " +
  "from the OS keychain when it can, refreshing silently when it must, and opening the " +
  "browser only when there is no other way.";

/** Publisher name (winget `Publisher`, copyright holder). */
export const PUBLISHER = "copebit";

/**
 * Debian `Maintainer`. The address is a placeholder on the apt host's domain until the team
 * names a real one.
 */
export const MAINTAINER = "copebit <packages@agent-runner.io>";

/**
 * The licence. No LICENSE file or licence statement exists yet, so every channel says
 * "proprietary, all rights reserved" until one is chosen; change it here (and add LICENSE,
 * which the archives then carry).
 */
export const LICENSE = {
  /** SPDX identifier, or `undefined` when there is none. */
  spdx: undefined as string | undefined,
  /** Short name for winget `License` and DEP-5 `License:`. */
  name: "proprietary",
  text: `Copyright ${PUBLISHER}. All rights reserved.\n` +
    "No licence is granted beyond installing and running the released binaries.",
};

/** The version stamped in `deno.json`, the one place it lives. */
export function projectVersion(): string {
  return denoJson.version;
}

/** `https://github.com/copebit/agent-runner-auth/releases/download/v0.1.0/<file>`. */
export function releaseAssetUrl(version: string, file: string, base = RELEASES_BASE): string {
  return `${base.replace(/\/$/, "")}/download/v${version}/${file}`;
}
