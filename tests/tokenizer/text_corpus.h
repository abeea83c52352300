// Texts the tokenizer tests run over: hand-written hard cases and every
// question/prompt text of the benchmark files in ../shared/data. Shared by the
// transformers.js oracle test and the pre-tokenizer test.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace rv_test {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error(p.string() + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string gunzip(const fs::path& p) {
  gzFile g = gzopen(p.c_str(), "rb");
  if (!g) throw std::runtime_error(p.string() + ": cannot open");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(g, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(g);
  return out;
}

inline std::vector<json> jsonl(const std::string& text) {
  std::vector<json> rows;
  std::istringstream ss(text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// Hand-written hard cases (valid UTF-8).
inline std::vector<std::string> hard_texts() {
  std::vector<std::string> v = {
      "",
      " ",
      "Hello world",
      // CJK
      "你好，世界！这是一个测试。",
      "日本語のテキスト、カタカナとひらがな。東京タワー",
      "한국어 텍스트입니다. 안녕하세요!",
      "混合 mixed 文本 text123数字",
      // emoji, ZWJ sequences, modifiers, flags
      "👨‍👩‍👧‍👦 family",
      "🏳️‍🌈 and 🏴‍☠️ flags 🇺🇸🇯🇵",
      "👍🏽 thumbs 🤖🤖🤖 robots",
      "emoji at end 😀",
      // combining marks, NFC vs NFD pairs
      "e\u0301 vs \u00e9",
      "A\u030a vs \u00c5 vs \u212b",
      "\u1100\u1161\u11a8 jamo",
      "q\u0307\u0323 reordered marks",
      "\u0344 and \u0958 decompose",
      "Cafe\u0301 cre\u0300me bru\u0302le\u0301e",
      "\ufb01 ligature stays",
      // RTL
      "مرحبا بالعالم",
      "שלום עולם",
      "abc \u202eevil\u202c def",
      // whitespace runs
      std::string(100, ' '),
      "a" + std::string(50, ' ') + "b",
      "\t\t\t\tx",
      "\n\n\n\n",
      "  \t \n \r\n  ",
      "x" + std::string(3000, ' ') + "y",
      std::string(200, '\n') + "end",
      "trailing   ",
      "   leading",
      "a \n b \n\n c",
      // \r\n
      "line1\r\nline2\r\n\r\nline3",
      "\r\r\n\n",
      "word\r\n",
      // digit runs
      "1234567890123",
      "3.14159 and 2.71828",
      "1,000,000 and 1 000 000",
      "  123abc456def7890",
      "x=12345678901234567890",
      // contractions with capitals
      "I'M HERE, YOU'RE, HE'S, THEY'VE, WE'LL, I'D, DON'T",
      "'S 'T 'Re 'vE 'Ll 'D",
      "don\u2019t won't can't shouldn't've",
      "It's John's book",
      // special tokens inside text
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
      "text<|endoftext|>more",
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nX<|eot_id|>",
      "<|im_start <|im_end|>> <<|im_end|>>",
      "<|im_end|><|im_end|>",
      "<tool_call>{\"a\": 1}</tool_call>",
      "<think>\n\n</think>\n\nAnswer",
      "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
      " <|im_end|> spaced ",
      // other Unicode
      "Hello\u00a0world x\u3000y",
      "zero\u200bwidth",
      "\u2028line sep\u2029para sep",
      "\u2115 \u2460 \u00bd \u216b",
      "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522",
      std::string("ctrl\x01\x02\x7f chars"),
      "tab\tin\tline",
      "Ω≈ç√∫˜µ≤≥÷ åß∂ƒ©˙∆˚¬…æ",
      // code
      "def f(x):\n    return x**2  # comment\n",
      "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
      "    \n    \n\tif x:\n\t\tpass",
      "https://example.com/path?q=1&r=2#frag",
      "!!!???...,,,;;;:::",
      "''''''```````\"\"\"\"......!!!!!!??????",
      "$$ \\frac{a}{b} = c^2 $$",
  };
  return v;
}
// GSM8K questions (test + train) and test answers, HumanEval prompts, BBH
// task inputs and CoT prompts, SciQ supports and questions, GSM-Plus and
// GSM-Symbolic questions.
inline std::vector<std::string> data_texts() {
  const fs::path d = RV_SHARED_DIR "/data";
  std::vector<std::string> data;
  for (const char* f : {"gsm8k/test.jsonl", "gsm8k/train.jsonl"})
    for (const auto& r : jsonl(slurp(d / f))) data.push_back(r.at("question"));
  for (const auto& r : jsonl(slurp(d / "gsm8k/test.jsonl"))) data.push_back(r.at("answer"));
  for (const auto& r : jsonl(gunzip(d / "humaneval/HumanEval.jsonl.gz")))
    data.push_back(r.at("prompt"));
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(d / "bbh/tasks")) files.push_back(e.path());
  for (const auto& e : fs::directory_iterator(d / "bbh/cot-prompts")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (f.extension() == ".json") {
      json doc = json::parse(slurp(f));  // named: a temporary would die before the loop
      for (const auto& ex : doc.at("examples")) data.push_back(ex.at("input"));
    } else {
      data.push_back(slurp(f));
    }
  }
  for (const char* f : {"sciq/sciq_test.json", "sciq/sciq_val.json"}) {
    for (const auto& r : json::parse(slurp(d / f))) {
      data.push_back(r.at("support"));
      data.push_back(r.at("question"));
    }
  }
  for (const auto& r : jsonl(slurp(d / "gsm-plus/gsmplus_testmini.jsonl")))
    data.push_back(r.at("question"));
  for (const auto& r : jsonl(slurp(d / "gsm-symbolic/GSM_p2.jsonl")))
    data.push_back(r.at("question"));
  return data;
}

}  // namespace rv_test
