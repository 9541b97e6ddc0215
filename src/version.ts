/**
 * The version, from `deno.json`'s `version` field: the one place it is stamped (a release
 * tag must match it). Imported only by `--version` and `status`, never on the cached path.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** The product version, e.g. `0.1.0`. */
export function version(): string {
  return denoJson.version;
}
