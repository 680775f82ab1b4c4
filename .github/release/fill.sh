#!/usr/bin/env bash
# Fills the krew manifest and the Homebrew formula with a release's version and the SHA256
# of each archive in DIST, writing them next to the archives.
#   .github/release/fill.sh 0.2.0 dist
set -euo pipefail
version="$1"
dist="$2"
here="$(dirname "$0")"
for template in krew.yaml netpol-guard.rb; do
  out="$dist/${template/krew.yaml/netpol-guard.krew.yaml}"
  sed "s/VERSION/${version}/g" "$here/$template" > "$out"
  for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-apple-darwin aarch64-apple-darwin; do
    archive="$dist/netpol-guard-${version}-${target}.tar.gz"
    if [ ! -f "$archive" ]; then
      echo "missing $archive" >&2
      exit 1
    fi
    sum=$(sha256sum "$archive" | cut -d' ' -f1)
    sed -i "s/SHA256_${target}/${sum}/" "$out"
  done
  if grep -q 'SHA256_\|VERSION' "$out"; then
    echo "$out still has a placeholder" >&2
    exit 1
  fi
  echo "wrote $out"
done
