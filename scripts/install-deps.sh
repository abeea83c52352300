#!/usr/bin/env bash
# Installs the Debian packages reasonvec needs to build and test, if missing.
# Idempotent: does nothing (and needs no network) when all are present.
# With arguments, installs those packages instead (install-test-deps.sh).
set -euo pipefail
pkgs=(g++ cmake ninja-build pkg-config make
      nlohmann-json3-dev libcli11-dev libpcre2-dev libcpp-httplib-dev
      libsqlite3-dev libyaml-cpp-dev zlib1g-dev libssl-dev libicu-dev
      libgtest-dev libgmock-dev libbenchmark-dev libgmp-dev libeigen3-dev libopenblas-dev
      python3 clang nodejs npm time)
[ $# -gt 0 ] && pkgs=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian (e.g. nodesource); accept any working one.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
