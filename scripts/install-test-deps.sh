#!/usr/bin/env bash
# Installs the test-only Debian packages (never runtime dependencies):
# python3-torch, the training oracle of tests/train (gradients, AdamW, the
# GRPO loss) and of bench/train_vs_torch.sh. Idempotent: no network when present.
exec "$(dirname "$0")/install-deps.sh" python3-torch
