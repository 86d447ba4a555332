#!/bin/sh
# Prints the next release version of $CONVOY_BUNDLE as a dotenv line, for CI:
#   CONVOY_RELEASE_VERSION=1.3.0
# Usage: sh convoy-next-version.sh major|minor|patch|prerelease [PREID]
# Needs CONVOY_URL, CONVOY_TOKEN and CONVOY_BUNDLE; uses the convoy CLI when it is installed,
# else curl alone (GET /api/v1/bundles/NAME/versions/next).
set -eu
: "${CONVOY_URL:?set CONVOY_URL}" "${CONVOY_TOKEN:?set CONVOY_TOKEN}" "${CONVOY_BUNDLE:?set CONVOY_BUNDLE}"
bump=${1:-minor}
preid=${2:-}
if command -v convoy >/dev/null 2>&1; then
  exec convoy version next "$CONVOY_BUNDLE" --bump "$bump" ${preid:+--preid "$preid"} --dotenv
fi
# --fail-with-body keeps the server's {"error":{"code","message"}} so the job log says why.
answer=$(curl -sS --fail-with-body -H "Authorization: Bearer $CONVOY_TOKEN" \
  "$CONVOY_URL/api/v1/bundles/$CONVOY_BUNDLE/versions/next?bump=$bump${preid:+&preid=$preid}") ||
  { echo "convoy-next-version: ${answer:-no answer from $CONVOY_URL}" >&2; exit 1; }
version=$(printf '%s' "$answer" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "unexpected answer: $answer" >&2; exit 1; }
echo "CONVOY_RELEASE_VERSION=$version"
