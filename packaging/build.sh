#!/usr/bin/env bash
# Builds amx's Debian and RPM packages into dist/ with nfpm v2.48.0:
#   packaging/build.sh                 # both, version from git describe
#   VERSION=1.2.0 FORMATS=deb packaging/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

# The release tag (v1.2.0 -> 1.2.0); an untagged build is a pre-release
# named by its commit.
if [ -n "${VERSION:-}" ]; then
  version=${VERSION#v}
elif tag=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
  version=${tag#v}
else
  version="0.0.0-git.$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fi
export VERSION=$version
export GOARCH=${GOARCH:-$(go env GOARCH)}
BUILD_DIR=dist/build
mkdir -p "$BUILD_DIR"

CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildVersion=v${VERSION}" -o "$BUILD_DIR/amx" .
# The hardened unit of examples/, with the packaged binary's path.
sed 's|/usr/local/bin/amx|/usr/bin/amx|g' examples/amx.service > "$BUILD_DIR/amx.service"

for format in ${FORMATS:-deb rpm}; do
  go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0 package \
    --config packaging/nfpm.yaml --packager "$format" --target dist/
done
ls -l dist/*.deb dist/*.rpm 2>/dev/null || true
