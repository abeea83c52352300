#!/usr/bin/env bash
# Installs the npm reference implementations used as test oracles into the
# git-ignored tests/oracles/node_modules (transformers.js tokenizers,
# @huggingface/jinja, node-llama-cpp with prebuilt CPU binaries).
set -euo pipefail
cd "$(dirname "$0")/../tests/oracles"
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.rv-installed-lock 2>/dev/null; then
  exit 0
fi
npm ci --omit=optional --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.rv-installed-lock
