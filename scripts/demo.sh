#!/usr/bin/env bash
# Install FogVault into .venv and run a backup + restore on the embedded default: a local
# folder (demo/repo) as the target, this project's own sources as the data.
# Idempotent: a second run makes a second (incremental) snapshot in the same repository.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
fv=.venv/bin/fogvault
demo=demo
mkdir -p "$demo"
export FOGVAULT_REPO="$demo/repo"
export FOGVAULT_PASSWORD_FILE="$demo/password"
export XDG_CACHE_HOME="$PWD/$demo/cache"
if [ ! -f "$FOGVAULT_PASSWORD_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 > "$FOGVAULT_PASSWORD_FILE")
fi
if [ ! -f "$FOGVAULT_REPO/config" ]; then
  "$fv" init
fi
echo "== backup of fogvault/ docs/ README.md"
"$fv" backup fogvault docs README.md --tag demo
echo "== snapshots"
"$fv" snapshots
rm -rf "$demo/restore"
echo "== restore latest into $demo/restore"
"$fv" restore --version latest --target "$demo/restore" --verify
for path in fogvault docs README.md; do
  diff -r "$path" "$demo/restore$PWD/$path" >/dev/null
done
echo "== restored tree is identical to the source"
