#!/usr/bin/env bash
# Signs the macOS release binaries on a macOS runner, notarizes them, and runs each one.
#
#   EXPECTED_VERSION=0.1.0 dist/macos/sign.sh dist/out/agent-runner-auth-0.1.0-*-apple-darwin
#   MACOS_ALLOW_ADHOC=1 EXPECTED_VERSION=0.1.0 dist/macos/sign.sh …   # a local or test build
#
# Why a stable identity: the Keychain's "Always Allow" is recorded against the binary's
# designated requirement (Developer ID team + identifier). The ad-hoc signature deno compile
# gives changes with every build, so every upgrade would prompt again (SPEC.md §6, research
# deno-ffi.md §1.6, §5.5).
#
# Hardened runtime (required for notarization) + dist/macos/entitlements.plist: V8 needs to
# write and execute JIT code (allow-jit, allow-unsigned-executable-memory, and
# disable-executable-page-protection as Deno's own builds have). Deliberately absent:
# allow-dyld-environment-variables and disable-library-validation, which would let any process
# that controls our environment inject code that then runs with our keychain access; the FFI
# only loads system frameworks, which library validation allows. Notarization does not run the
# binary, and a missing JIT entitlement only shows as a crash at launch (SIGTRAP), so each
# binary is launched here after signing.
#
# Secrets (GitHub Actions). Without the first three, or without the notary ones, the script
# FAILS: the README promises macOS binaries signed with a stable Developer ID and notarized, and
# an ad-hoc release would silently cost every user their Keychain "Always Allow" at each upgrade
# (and a Gatekeeper warning). A fork or a test release sets the repository variable
# MACOS_ALLOW_ADHOC=1 to get ad-hoc / un-notarized binaries instead, with a warning.
#   MACOS_CERT_P12         base64 of a .p12 holding the "Developer ID Application" cert + key
#   MACOS_CERT_PASSWORD    the .p12's password
#   MACOS_SIGN_IDENTITY    e.g. "Developer ID Application: copebit GmbH (TEAMID1234)"
#   MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID, MACOS_NOTARY_PASSWORD (app-specific password)
#                          notarytool credentials; without them signing still happens, with a
#                          warning that the binaries are not notarized.
set -euo pipefail

IDENTIFIER=io.agent-runner.agent-runner-auth
ENTITLEMENTS="$(cd "$(dirname "$0")" && pwd)/entitlements.plist"
: "${EXPECTED_VERSION:?set EXPECTED_VERSION to the version --version must print}"
[ $# -gt 0 ] || { echo "usage: EXPECTED_VERSION=X $0 BINARY..." >&2; exit 2; }
work="$(mktemp -d)"
keychain=""
cleanup() {
  [ -z "$keychain" ] || security delete-keychain "$keychain" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${MACOS_CERT_P12:-}" ] && [ -n "${MACOS_CERT_PASSWORD:-}" ] && [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  mode=identity
  keychain="$work/signing.keychain-db"
  kpass="$(uuidgen)"
  security create-keychain -p "$kpass" "$keychain"
  security set-keychain-settings -lut 3600 "$keychain"
  security unlock-keychain -p "$kpass" "$keychain"
  printf '%s' "$MACOS_CERT_P12" | base64 --decode >"$work/cert.p12"
  security import "$work/cert.p12" -k "$keychain" -P "$MACOS_CERT_PASSWORD" -T /usr/bin/codesign >/dev/null
  rm -f "$work/cert.p12"
  security set-key-partition-list -S apple-tool:,apple: -s -k "$kpass" "$keychain" >/dev/null
  # shellcheck disable=SC2046 # the existing search list, one path per word
  security list-keychains -d user -s "$keychain" $(security list-keychains -d user | tr -d '"')
  sign_args=(--sign "$MACOS_SIGN_IDENTITY" --timestamp --keychain "$keychain")
  echo "signing with the Developer ID identity ($IDENTIFIER)"
else
  mode=adhoc
  sign_args=(--sign - --timestamp=none)
  why="MACOS_CERT_P12, MACOS_CERT_PASSWORD or MACOS_SIGN_IDENTITY is not set, so the macOS binaries would get an ad-hoc signature and no notarization: Keychain 'Always Allow' would not survive upgrades and Gatekeeper would warn on quarantined copies"
  if [ "${MACOS_ALLOW_ADHOC:-}" != 1 ]; then
    echo "::error title=no Developer ID::$why. Set the secrets, or the repository variable MACOS_ALLOW_ADHOC=1 for a test release." >&2
    exit 1
  fi
  echo "::warning title=macOS binaries signed ad hoc::$why (MACOS_ALLOW_ADHOC=1)."
fi

for bin in "$@"; do
  codesign --force --options runtime --entitlements "$ENTITLEMENTS" --identifier "$IDENTIFIER" \
    "${sign_args[@]}" "$bin"
  codesign --verify --strict --verbose=2 "$bin"
  # Read whole before grepping: under pipefail, `codesign | grep -q` fails when grep stops
  # reading at its first match and codesign dies of SIGPIPE.
  info="$(codesign --display --verbose=2 "$bin" 2>&1)"
  grep -E '^(Identifier|Format|CodeDirectory|Authority|TeamIdentifier|Timestamp|Runtime)' <<<"$info" || true
  ents="$(codesign --display --entitlements - --xml "$bin" 2>/dev/null)"
  for key in com.apple.security.cs.allow-jit com.apple.security.cs.allow-unsigned-executable-memory; do
    grep -q "$key" <<<"$ents" || { echo "::error::$bin lacks the entitlement $key" >&2; exit 1; }
  done
  grep -q 'flags=.*runtime' <<<"$info" ||
    { echo "::error::$bin is not signed with the hardened runtime" >&2; exit 1; }
done

if [ "$mode" = identity ]; then
  if [ -n "${MACOS_NOTARY_APPLE_ID:-}" ] && [ -n "${MACOS_NOTARY_TEAM_ID:-}" ] && [ -n "${MACOS_NOTARY_PASSWORD:-}" ]; then
    # A bare executable cannot be stapled; Gatekeeper looks the ticket up online by its hash.
    mkdir "$work/notarize"
    cp "$@" "$work/notarize/"
    ditto -c -k --keepParent "$work/notarize" "$work/notarize.zip"
    xcrun notarytool submit "$work/notarize.zip" --apple-id "$MACOS_NOTARY_APPLE_ID" \
      --team-id "$MACOS_NOTARY_TEAM_ID" --password "$MACOS_NOTARY_PASSWORD" \
      --wait --timeout 30m --output-format json >"$work/notary.json" || true
    cat "$work/notary.json"
    status="$(plutil -extract status raw -o - "$work/notary.json" 2>/dev/null || echo unknown)"
    if [ "$status" != "Accepted" ]; then
      id="$(plutil -extract id raw -o - "$work/notary.json" 2>/dev/null || true)"
      [ -z "$id" ] || xcrun notarytool log "$id" --apple-id "$MACOS_NOTARY_APPLE_ID" \
        --team-id "$MACOS_NOTARY_TEAM_ID" --password "$MACOS_NOTARY_PASSWORD" || true
      echo "::error::notarization status: $status" >&2
      exit 1
    fi
  elif [ "${MACOS_ALLOW_ADHOC:-}" = 1 ]; then
    echo "::warning title=macOS binaries not notarized::MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID or MACOS_NOTARY_PASSWORD is not set (MACOS_ALLOW_ADHOC=1)."
  else
    echo "::error title=not notarized::MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID or MACOS_NOTARY_PASSWORD is not set. Set them, or the repository variable MACOS_ALLOW_ADHOC=1 for a test release." >&2
    exit 1
  fi
fi

# Launch smoke test: each binary, natively or under Rosetta, must print its version.
for bin in "$@"; do
  archs="$(lipo -archs "$bin")"
  runner=()
  if [ "$archs" = x86_64 ] && [ "$(uname -m)" = arm64 ]; then
    arch -x86_64 /usr/bin/true 2>/dev/null || softwareupdate --install-rosetta --agree-to-license >/dev/null
    runner=(arch -x86_64)
  fi
  # ${a[@]+…}: an empty array under set -u, even in macOS's bash 3.2
  out="$(${runner[@]+"${runner[@]}"} "$bin" --version 2>&1)" || {
    echo "::error::$bin ($archs) failed to launch after signing: $out" >&2
    exit 1
  }
  [ "$out" = "agent-runner-auth $EXPECTED_VERSION" ] || {
    echo "::error::$bin --version printed '$out', expected 'agent-runner-auth $EXPECTED_VERSION'" >&2
    exit 1
  }
  echo "launch ok ($archs, $mode): $out"
done
