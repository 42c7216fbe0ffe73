#!/usr/bin/env bash
# Builds the imece:local image for the docker compose testnet
# (testnet/docker-compose.yml): a static imece binary for the engine's own
# architecture, built here on the host, on an empty root (FROM scratch), since
# this engine has no registry to pull a base or a Go image from.
#
#   testnet/docker/build.sh [TAG]        (default imece:local, or $IMECE_IMAGE)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
tag="${1:-${IMECE_IMAGE:-imece:local}}"

arch="$(docker version --format '{{.Server.Arch}}')" || {
  echo "build.sh: no Docker engine answers (docker version failed)" >&2
  exit 1
}
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# CGO_ENABLED=0 and -tags nodlopen: no libc and no dynamic loader in the image.
# The kernels' optional OpenBLAS loading (purego) needs the loader: the tag leaves
# it out, so the binary is static and the built-in kernels do the work.
(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -tags nodlopen -ldflags="-s -w" -o "$ctx/imece" ./cmd/imece)
cp "$repo/assets/stories260K.gguf" "$repo/assets/LICENSE.stories260K" "$ctx/"
# git keeps no permission bits but x: the bootstrap key gets its 0600 here, or
# the node refuses it.
mkdir -m 0700 "$ctx/boot"
install -m 0600 "$repo/testnet/docker/boot/identity.key" "$ctx/boot/identity.key"

old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
docker build --quiet --tag "$tag" --file "$repo/testnet/docker/Dockerfile" "$ctx" >/dev/null
new="$(docker image inspect --format '{{.Id}}' "$tag")"
# The image this tag named before would stay behind untagged: remove it unless a
# container still uses it.
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  docker image rm "$old" >/dev/null 2>&1 || true
fi
echo "build.sh: built $tag (linux/$arch)"
