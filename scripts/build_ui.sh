#!/usr/bin/env bash
# Build the web UI (ui/ → src/loopml/server/ui_dist/) when its sources changed.
#
# The built assets are committed package data, so a clone whose assets match its sources
# needs no Node. The sources' sha256 is kept in ui_dist/.source-sha256; only when it
# differs (or the assets are missing, or --force is given) does this run `npm ci` and
# `npm run build` (type check, then Vite) and record the new hash.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ui="$root/ui"
dist="$root/src/loopml/server/ui_dist"
stamp="$dist/.source-sha256"

source_hash() {
  # Paths are part of the hash, so a renamed file counts as a change.
  (cd "$ui" && find package.json package-lock.json tsconfig.json vite.config.ts index.html src \
    -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

wanted="$(source_hash)"
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ -f "$dist/index.html" ] \
  && [ -f "$dist/app.js" ] && [ -f "$dist/app.css" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "web UI up to date"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "the web UI sources changed but npm is not installed: install Node.js 20+ to rebuild" >&2
  exit 1
fi
echo "building the web UI"
(cd "$ui" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
echo "$wanted" > "$stamp"
