// Reference chat-template renderer for tests: @huggingface/jinja, the engine
// transformers.js uses (Template applies trim_blocks/lstrip_blocks like
// transformers' Python environment).
//
// Usage: node chat_ref.mjs CASES.json
//   CASES.json: [{"template": "...", "context": {messages, add_generation_prompt, ...}}, ...]
// Prints a JSON array with one {"ok": true, "out": "..."} or
// {"ok": false, "error": "..."} per case, in order.
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const compiled = new Map();
const results = cases.map(({ template, context }) => {
  try {
    let t = compiled.get(template);
    if (!t) {
      t = new Template(template);
      compiled.set(template, t);
    }
    return { ok: true, out: t.render(context) };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
