import { StoreError } from "./errors.ts";
import { assertStoreError, same } from "../test/store_contract.ts";
import { boundStoreCall, DEFAULT_STORE_TIMEOUT_MS, storeTimeoutMs } from "./timeout.ts";

Deno.test("boundStoreCall: a call that never answers loses to the timer, which runs onTimeout", async () => {
  let cleanedUp = false;
  const never = new Promise<string>(() => {});
  const error = await assertStoreError(
    boundStoreCall(never, 20, () => {
      cleanedUp = true;
      return new StoreError("timeout", "no answer within 20 ms");
    }),
    "timeout",
  );
  same(error.message, "no answer within 20 ms", "message");
  same(cleanedUp, true, "onTimeout ran");
});

Deno.test("boundStoreCall: a prompt answer wins, and the timer left behind never fires onTimeout", async () => {
  const value = await boundStoreCall(Promise.resolve("v"), 5, () => {
    throw new Error("must not run");
  });
  same(value, "v", "value");
  await new Promise((resolve) => setTimeout(resolve, 20)); // past the expiry: nothing happens
});

Deno.test("boundStoreCall: a late rejection after the timeout is absorbed", async () => {
  let reject!: (error: Error) => void;
  const late = new Promise<string>((_, r) => reject = r);
  await assertStoreError(
    boundStoreCall(late, 10, () => new StoreError("timeout", "t")),
    "timeout",
  );
  reject(new Error("too late")); // an unhandled rejection here would fail the test
  await new Promise((resolve) => setTimeout(resolve, 10));
});

Deno.test("storeTimeoutMs: AGENT_RUNNER_STORE_TIMEOUT_MS when a positive integer, else 3000", () => {
  // Through an env getter, not Deno.env.set: the env is process-wide under --parallel.
  for (
    const [raw, want] of [
      ["250", 250],
      ["0", 3000],
      ["-5", 3000],
      ["1.5", 3000],
      ["x", 3000],
      ["2147483647", 2147483647],
      ["2147483648", 3000],
    ]
  ) {
    same(storeTimeoutMs(() => String(raw)), want, `for "${raw}"`);
  }
  same(storeTimeoutMs(() => undefined), DEFAULT_STORE_TIMEOUT_MS, "unset");
});
