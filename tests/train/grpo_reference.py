#!/usr/bin/python3
"""Reference GRPO loss for tests/train/grpo_test.cpp, written from the
published definitions in the shape of TRL's GRPOTrainer (_compute_loss and
the advantage computation of _generate_and_score_completions), in float64
PyTorch with autograd for dL/dlogits.

Usage: grpo_reference.py IN.json OUT.json
IN:  {"vocab", "logits": [N*vocab], "tokens": [[row, id, seq, old_logprob, ref_logprob]...],
      "rewards": [S], "group", "max_completion_length",
      "configs": [{"scale_by_std", "epsilon_low", "epsilon_high", "beta"}...]}
OUT: {"results": [per config: {"advantages": [S], "<aggregation>": {"loss", "dlogits", "kl",
      "clip_low", "clip_high", "entropy", "ratio"}} for aggregation in grpo, bnpo, dr_grpo]}
(one process for every configuration: importing torch takes seconds).
"""
import json
import sys

try:
    import torch
except ImportError:
    sys.exit(77)  # the test skips: no reference without torch


def advantages(rewards, group, scale_by_std):
    r = torch.tensor(rewards, dtype=torch.float64)
    mean = r.view(-1, group).mean(dim=1).repeat_interleave(group)
    std = r.view(-1, group).std(dim=1).repeat_interleave(group)  # unbiased, as TRL
    a = r - mean
    if scale_by_std:
        a = a / (std + 1e-4)
    return a


def padded(inp, S):
    """Per-sequence [S, L] index tensors and mask from the flat token list."""
    per = [[] for _ in range(S)]
    for row, tid, seq, old, ref in inp["tokens"]:
        per[seq].append((row, tid, old, ref))
    L = max(1, max(len(p) for p in per))
    rows = torch.zeros(S, L, dtype=torch.long)
    ids = torch.zeros(S, L, dtype=torch.long)
    old = torch.zeros(S, L, dtype=torch.float64)
    ref = torch.zeros(S, L, dtype=torch.float64)
    mask = torch.zeros(S, L, dtype=torch.float64)
    for s, p in enumerate(per):
        for k, (row, tid, o, rf) in enumerate(p):
            rows[s, k], ids[s, k], old[s, k], ref[s, k], mask[s, k] = row, tid, o, rf, 1.0
    return rows, ids, old, ref, mask


def loss_for(inp, adv, loss_type):
    V = inp["vocab"]
    logits = torch.tensor(inp["logits"], dtype=torch.float64).view(-1, V).requires_grad_(True)
    S = adv.shape[0]
    rows, ids, old, ref, mask = padded(inp, S)
    logp_all = torch.log_softmax(logits, dim=-1)
    per_token_logps = logp_all[rows, ids]  # [S, L]
    probs = torch.softmax(logits, dim=-1)
    entropies = -(probs * logp_all).sum(-1)[rows]  # [S, L]

    beta = inp["beta"]
    eps_low, eps_high = inp["epsilon_low"], inp["epsilon_high"]
    coef_1 = torch.exp(per_token_logps - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss1 = coef_1 * adv.unsqueeze(1)
    per_token_loss2 = coef_2 * adv.unsqueeze(1)
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_kl = torch.exp(ref - per_token_logps) - (ref - per_token_logps) - 1
        per_token_loss = per_token_loss + beta * per_token_kl

    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * inp["max_completion_length"])
    else:
        raise ValueError(loss_type)
    loss.backward()

    n = mask.sum()
    with torch.no_grad():
        a = adv.unsqueeze(1)
        is_low = (coef_1 < 1 - eps_low) & (a < 0)
        is_high = (coef_1 > 1 + eps_high) & (a > 0)
        kl = ((per_token_kl * mask).sum() / n).item() if beta != 0.0 else 0.0
        return {
            "loss": loss.item(),
            "dlogits": logits.grad.view(-1).tolist(),
            "kl": kl,
            "clip_low": ((is_low.double() * mask).sum() / n).item(),
            "clip_high": ((is_high.double() * mask).sum() / n).item(),
            "entropy": ((entropies * mask).sum() / n).item(),
            "ratio": ((coef_1 * mask).sum() / n).item(),
        }


def main():
    with open(sys.argv[1]) as f:
        inp = json.load(f)
    results = []
    for cfg in inp["configs"]:
        c = dict(inp, **cfg)
        adv = advantages(c["rewards"], c["group"], c["scale_by_std"])
        out = {"advantages": adv.tolist()}
        for lt in ("grpo", "bnpo", "dr_grpo"):
            out[lt] = loss_for(c, adv, lt)
        results.append(out)
    with open(sys.argv[2], "w") as f:
        json.dump({"results": results}, f)


if __name__ == "__main__":
    main()
