/**
 * The root of the error classes and the store's error, on the floor of the house: `ffi/`
 * raises {@linkcode StoreError} and imports nothing above itself (issue 13 point 11), so the
 * classes it throws live here and `src/errors.ts` re-exports them beside the other error
 * classes and the one exit-code map. Moving them down, rather than giving `ffi/` an error type
 * of its own, keeps every `instanceof StoreError` and exit code as it was: a second type would
 * need a conversion at every backend, and a missed one turns an expected keychain failure into
 * an internal error (exit 70).
 *
 * No imports: `src/errors.ts` is on the cached `token` path.
 *
 * @module
 */

/** Stable error codes. The README's exit-code table is generated from `EXIT_CODES` (src/errors.ts). */
export type ErrorCode =
  | "login_required"
  | "usage"
  | "config"
  | "store"
  | "network"
  | "auth"
  | "lock_timeout"
  | "login_failed"
  | "internal";

/** Base class: a one-line, secret-free message plus a stable code. */
export class AppError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = "AppError";
  }
}

/** Why a token store failed. `locked` and `timeout` are kept apart because their fixes differ. */
export type StoreFailure = "unavailable" | "locked" | "timeout" | "corrupt" | "failed";

/** A token store could not be read or written. A read failure is never taken as "no token". */
export class StoreError extends AppError {
  readonly failure: StoreFailure;
  constructor(failure: StoreFailure, message: string, options?: ErrorOptions) {
    super("store", message, options);
    this.failure = failure;
    this.name = "StoreError";
  }
}
