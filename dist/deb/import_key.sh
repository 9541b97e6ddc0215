#!/bin/sh
# Imports the apt signing key into $GNUPGHOME and prints its fingerprint (release workflow).
#
#   GNUPGHOME=$(mktemp -d) APT_GPG_KEY="$(cat key.asc)" sh dist/deb/import_key.sh
#
# APT_GPG_KEY is the ASCII-armored secret key (`gpg --armor --export-secret-keys KEYID`); a
# passphrase, if the key has one, is given to dist/deb/repo.ts as APT_GPG_PASSPHRASE.
set -eu
: "${GNUPGHOME:?set GNUPGHOME to a private directory}"
: "${APT_GPG_KEY:?APT_GPG_KEY (the armored secret key) is not set}"
mkdir -p "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
printf '%s\n' "$APT_GPG_KEY" | gpg --batch --quiet --import 2>/dev/null ||
  { echo "APT_GPG_KEY is not an importable OpenPGP secret key" >&2; exit 1; }
fpr=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || { echo "APT_GPG_KEY holds no secret key" >&2; exit 1; }
printf '%s\n' "$fpr"
