import { strictEqual as assertEquals } from "node:assert/strict";
import { sha256Hex } from "./sha256.ts";

async function reference(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("sha256Hex: the FIPS 180-4 examples", () => {
  assertEquals(
    sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assertEquals(
    sha256Hex(""),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("sha256Hex: agrees with WebCrypto at every length around the block boundaries", async () => {
  for (let n = 0; n < 300; n++) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 131 + n) & 0xff);
    assertEquals(sha256Hex(bytes), await reference(bytes), `length ${n}`);
  }
});
