import { StoreError } from "./errors.ts";
import { assertStoreError, same } from "../test/store_contract.ts";
import {
  boundStoreCall,
  DEFAULT_STORE_TIMEOUT_MS,
  patientTimer,
  storeTimeoutMs,
} from "./timeout.ts";

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

/** A patient timer driven by hand: a fake clock and the scheduled ticks in a queue. */
function drivenTimer(timeoutMs: number, step: number) {
  let clock = 0;
  const ticks: { ms: number; fn: () => void }[] = [];
  let expired = false;
  const cancel = patientTimer(timeoutMs, () => expired = true, {
    step,
    now: () => clock,
    schedule: (ms, fn) => ticks.push({ ms, fn }),
  });
  /** Runs the next tick `late` ms after it was due. */
  const tick = (late = 0) => {
    const next = ticks.shift()!;
    clock += next.ms + late;
    next.fn();
  };
  return { tick, cancel, expired: () => expired, pending: () => ticks.length };
}

Deno.test("patientTimer: ticks that come on time expire it after timeoutMs", () => {
  const t = drivenTimer(1000, 250);
  for (let i = 0; i < 3; i++) t.tick();
  same(t.expired(), false, "after 750 ms");
  t.tick();
  same(t.expired(), true, "after 1000 ms");
  same(t.pending(), 0, "no tick left");
});

Deno.test("patientTimer: a tick that comes late (the process was not run) is credited two steps at most (issue 11 #8)", () => {
  const t = drivenTimer(1000, 250);
  t.tick(60_000); // the machine ran something else for a minute: counts as 500 ms
  same(t.expired(), false, "a starved minute does not end the wait");
  t.tick();
  same(t.expired(), false, "750 ms credited");
  t.tick();
  same(t.expired(), true, "two more steps of our own time end it");
});

Deno.test("patientTimer: cancelled, it never expires and schedules nothing more", () => {
  const t = drivenTimer(1000, 250);
  t.cancel();
  t.tick();
  same(t.expired(), false, "cancelled");
  same(t.pending(), 0, "no re-arm");
});
