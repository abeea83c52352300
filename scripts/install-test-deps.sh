#!/usr/bin/env bash
# Installs the test-only Debian packages (never runtime dependencies):
# python3-torch, the training oracle of tests/train (gradients, AdamW) and of
# bench/train_vs_torch. Idempotent: no network when present.
set -euo pipefail
pkgs=(python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-test-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
