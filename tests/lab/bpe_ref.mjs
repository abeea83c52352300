// Reference tokenization of a tokenizer the lab trained, with transformers.js
// (@lenml/tokenizers, a fork of transformers.js' tokenizers) loading its
// tokenizer.json and tokenizer_config.json as they are.
//
//   node bpe_ref.mjs NODE_MODULES TOKENIZER_DIR IN.jsonl OUT.jsonl
//
// NODE_MODULES is the oracle folder's node_modules (tests/oracles). Each input
// line is one request, each output line its answer, in order:
//   {"op":"encode","text":T}        -> {"ids":[...]}   (add_special_tokens: false)
//   {"op":"chat","messages":[...]}  -> {"text":T}      (apply_chat_template, generation prompt)
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, tokDir, inPath, outPath] = process.argv.slice(2);
if (!nodeModules || !tokDir || !inPath || !outPath) {
  console.error("usage: node bpe_ref.mjs NODE_MODULES TOKENIZER_DIR IN.jsonl OUT.jsonl");
  process.exit(2);
}
const lib = await import(
  pathToFileURL(path.join(nodeModules, "@lenml/tokenizers/dist/main.mjs")).href
);
const read = (f) => JSON.parse(fs.readFileSync(path.join(tokDir, f), "utf8"));
const tok = lib.TokenizerLoader.fromPreTrained({
  tokenizerJSON: read("tokenizer.json"),
  tokenizerConfig: read("tokenizer_config.json"),
});

const lines = fs.readFileSync(inPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = [];
for (const line of lines) {
  const r = JSON.parse(line);
  if (r.op === "encode") {
    out.push({ ids: tok.encode(r.text, { add_special_tokens: false }) });
  } else if (r.op === "chat") {
    out.push({
      text: tok.apply_chat_template(r.messages, { tokenize: false, add_generation_prompt: true }),
    });
  } else {
    console.error(`unknown op ${r.op}`);
    process.exit(2);
  }
}
fs.writeFileSync(outPath, out.map((o) => JSON.stringify(o)).join("\n") + "\n");
