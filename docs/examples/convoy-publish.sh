#!/bin/sh
# Adds this pipeline's images and packages to the draft $CONVOY_RELEASE_VERSION of $CONVOY_BUNDLE,
# creating the draft if needed. Every artifact is tagged with the one version variable.
#
#   CONVOY_URL, CONVOY_TOKEN, CONVOY_BUNDLE, CONVOY_RELEASE_VERSION   required
#   CONVOY_PACKAGES   files to upload, space separated; the format follows the extension
#                     (.deb, .rpm, .tgz = npm: read from the file), anything else is a plain file
#   CONVOY_IMAGES     NAME=SOURCE pairs for skopeo, e.g. "pos-app=oci-archive:dist/pos-app.tar";
#                     pushed to <registry>/<bundle>/<NAME>:<version> (CONVOY_REGISTRY, default:
#                     the host of CONVOY_URL)
#   CONVOY_USER       user name for skopeo (default: ci-bot, the CI user the README creates); the
#                     token is the password
set -eu
: "${CONVOY_URL:?set CONVOY_URL}" "${CONVOY_TOKEN:?set CONVOY_TOKEN}" "${CONVOY_BUNDLE:?set CONVOY_BUNDLE}"
: "${CONVOY_RELEASE_VERSION:?set CONVOY_RELEASE_VERSION (sh convoy-next-version.sh minor > release.env)}"
draft="$CONVOY_URL/api/v1/bundles/$CONVOY_BUNDLE/versions/$CONVOY_RELEASE_VERSION"
registry=${CONVOY_REGISTRY:-$(printf '%s' "$CONVOY_URL" | sed 's#^[a-z]*://##; s#/.*##')}

for image in ${CONVOY_IMAGES:-}; do
  name=${image%%=*}
  source=${image#*=}
  tls=true
  case "$CONVOY_URL" in http://*) tls=false ;; esac
  skopeo copy --dest-tls-verify="$tls" --dest-creds "${CONVOY_USER:-ci-bot}:$CONVOY_TOKEN" \
    "$source" "docker://$registry/$CONVOY_BUNDLE/$name:$CONVOY_RELEASE_VERSION"
done

for file in ${CONVOY_PACKAGES:-}; do
  case "$file" in
    *.deb) query="format=deb" ;;
    *.rpm) query="format=rpm" ;;
    *.tgz) query="format=npm" ;;
    *) query="type=file" ;;
  esac
  # One request per file: streamed, added (or replaced) in the draft; 409 once approved.
  answer=$(curl -sS --fail-with-body -w '\n%{http_code}' \
    -H "Authorization: Bearer $CONVOY_TOKEN" --upload-file "$file" \
    "$draft/files/$(basename "$file")?$query") || { echo "convoy-publish: $file: $answer" >&2; exit 1; }
  # 201: added, 200: replaced
  echo "$(printf '%s\n' "$answer" | tail -n 1) $file"
done
