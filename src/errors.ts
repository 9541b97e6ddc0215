/**
 * Typed errors and the one exit-code map (STYLE.md §4, after cli/cli's `cmd/gh/main.go`).
 *
 * Every failure the CLI reports is an {@linkcode AppError} with a stable `code`; `src/main.ts` is the
 * only place that turns one into an exit status, through {@linkcode exitCodeFor}. Messages are one
 * line, sentence case, name the file, field or flag at fault, and never contain a secret.
 *
 * @module
 */

import type { ErrorCode } from "../ffi/errors.ts";
import { AppError } from "../ffi/errors.ts";

// The root class and the store's error live on the floor (`ffi/errors.ts`), which raises them.
export { AppError, type ErrorCode, StoreError, type StoreFailure } from "../ffi/errors.ts";

/** Exit status per error code. 1 is "not signed in" because SPEC.md §1 fixes it for Claude Code. */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  login_required: 1,
  usage: 2,
  config: 3,
  store: 4,
  network: 5,
  auth: 6,
  lock_timeout: 7,
  login_failed: 8,
  internal: 70,
};

/** No usable tokens and no way to sign in from here (non-interactive, `$CI`, cooldown). */
export class LoginRequiredError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super("login_required", message, options);
    this.name = "LoginRequiredError";
  }
}

/** Bad command line: unknown verb or flag, missing value. */
export class UsageError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
    this.name = "UsageError";
  }
}

/** Missing or invalid `config.json`; the message names the file and the field. */
export class ConfigError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super("config", message, options);
    this.name = "ConfigError";
  }
}

/** The authorization server could not be reached, timed out, or answered 5xx/429/garbage. */
export class NetworkError extends AppError {
  /** Whether trying again may help (transport failure, timeout, 5xx, 429). */
  readonly retryable: boolean;
  /** The server's `Retry-After`, when it sent one. */
  readonly retryAfterMs: number | undefined;
  constructor(
    message: string,
    details: { retryable?: boolean; retryAfterMs?: number } = {},
    options?: ErrorOptions,
  ) {
    super("network", message, options);
    this.retryable = details.retryable ?? false;
    this.retryAfterMs = details.retryAfterMs;
    this.name = "NetworkError";
  }
}

/** The authorization server rejected us (`invalid_client`, `unauthorized_client`, …). */
export class AuthError extends AppError {
  /** The OAuth `error` value when there is one, e.g. `invalid_grant`. */
  readonly oauthError: string | undefined;
  constructor(message: string, oauthError?: string, options?: ErrorOptions) {
    super("auth", message, options);
    this.oauthError = oauthError;
    this.name = "AuthError";
  }
}

/** Another agent-runner-auth held the lock for longer than we are willing to wait. */
export class LockTimeoutError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super("lock_timeout", message, options);
    this.name = "LockTimeoutError";
  }
}

/** A browser login did not complete: denied, timed out, port taken, bad callback. */
export class LoginFailedError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super("login_failed", message, options);
    this.name = "LoginFailedError";
  }
}

/** The exit status for any thrown value; unknown errors are internal (70, EX_SOFTWARE). */
export function exitCodeFor(error: unknown): number {
  return error instanceof AppError ? EXIT_CODES[error.code] : EXIT_CODES.internal;
}
