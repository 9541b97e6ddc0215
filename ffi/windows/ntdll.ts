/**
 * Whether this Windows process runs under Wine, and which Wine: Wine's `ntdll.dll` exports
 * `wine_get_version` (`const char *wine_get_version(void)`), Windows' does not. This is the
 * check Wine's own documentation suggests for programs that need to know.
 *
 * Used by the Windows tests so their names say truthfully where they ran ("under Wine 10.0"):
 * Wine proves the ABI and the product's Windows paths, not what only Windows has (DPAPI per
 * user, the Credential Manager UI).
 *
 * @module
 */

let cached: string | null | undefined;

/**
 * Wine's version ("10.0"), or `null` on real Windows and on every other OS. Opens `ntdll.dll`
 * once and closes it again. Requires `--allow-ffi` on Windows; elsewhere it returns `null`
 * without any permission.
 */
export function wineVersion(): string | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (Deno.build.os !== "windows") return cached;
  let ntdll;
  try {
    ntdll = Deno.dlopen("ntdll.dll", {
      // const char *wine_get_version(void);  only in Wine's ntdll
      wine_get_version: { parameters: [], result: "pointer" },
    });
  } catch {
    return cached; // the symbol is missing: real Windows
  }
  try {
    const pointer = ntdll.symbols.wine_get_version();
    cached = pointer === null ? null : new Deno.UnsafePointerView(pointer).getCString();
  } finally {
    ntdll.close();
  }
  return cached;
}
