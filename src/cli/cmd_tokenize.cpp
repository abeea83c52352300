// reasonvec tokenize / detokenize: the model's tokenizer from the command line.
//
//   reasonvec tokenize --model DIR (TEXT | --file F) [--json] [--no-special]
//     prints the ids separated by spaces, or with --json
//     {"ids": [...], "tokens": [...tokenizer.json strings...], "count": N}
//   reasonvec detokenize --model DIR IDS... [--skip-special]
//     IDS may also be comma-separated; prints the text followed by a newline.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "common/file.h"
#include "tokenizer/tokenizer.h"

namespace rv::cli {

void add_tokenize_command(CLI::App& app) {
  struct Opts {
    std::string model, text, file;
    bool json = false, no_special = false;
  };
  auto* o = keep_alive<Opts>();
  auto* sub = app.add_subcommand("tokenize",
                                 "Encode text with a model's tokenizer and print the token ids");
  sub->add_option("--model,-m", o->model, "Model (or tokenizer) directory, or .gguf")->required();
  auto* text = sub->add_option("text", o->text, "Text to encode");
  auto* file = sub->add_option("--file,-f", o->file, "Read the text from this file (bytes as is)");
  text->excludes(file);
  sub->add_flag("--json", o->json, "Print {\"ids\", \"tokens\", \"count\"} as JSON");
  sub->add_flag("--no-special", o->no_special,
                "Treat special tokens written in the text as plain text");
  sub->callback([o, text, file] {
    if (text->count() == 0 && file->count() == 0)
      throw CLI::ValidationError("give TEXT or --file F");
    Tokenizer tok = Tokenizer::load(o->model);
    std::string input = file->count() ? read_file(o->file) : o->text;
    std::vector<int32_t> ids = tok.encode(input, !o->no_special);
    if (o->json) {
      nlohmann::json j;
      j["ids"] = ids;
      auto& names = j["tokens"] = nlohmann::json::array();
      for (int32_t id : ids) names.push_back(tok.id_to_token()[id]);
      j["count"] = ids.size();
      printf("%s\n", j.dump().c_str());
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
      printf("%s\n", line.c_str());
    }
  });

  struct DOpts {
    std::string model;
    std::vector<std::string> ids;
    bool skip_special = false;
  };
  auto* d = keep_alive<DOpts>();
  auto* dsub = app.add_subcommand("detokenize",
                                  "Decode token ids with a model's tokenizer and print the text");
  dsub->add_option("--model,-m", d->model, "Model (or tokenizer) directory, or .gguf")->required();
  dsub->add_option("ids", d->ids, "Token ids (separated by spaces or commas)")->required();
  dsub->add_flag("--skip-special", d->skip_special, "Leave out special tokens");
  dsub->callback([d] {
    std::vector<int32_t> ids;
    for (const auto& arg : d->ids) {
      size_t pos = 0;
      while (pos <= arg.size()) {
        size_t comma = arg.find(',', pos);
        if (comma == std::string::npos) comma = arg.size();
        std::string item = arg.substr(pos, comma - pos);
        pos = comma + 1;
        if (item.empty()) continue;
        char* end = nullptr;
        errno = 0;
        long long v = strtoll(item.c_str(), &end, 10);
        if (*end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX)
          throw CLI::ValidationError("ids", "'" + item + "' is not a token id");
        ids.push_back(static_cast<int32_t>(v));
      }
    }
    Tokenizer tok = Tokenizer::load(d->model);
    for (int32_t id : ids) {
      if (!tok.is_valid_id(id))
        throw Error(d->model, "token id " + std::to_string(id) +
                                  " is not in the vocabulary (ids 0.." +
                                  std::to_string(tok.vocab_size() - 1) + ")");
    }
    std::string text = tok.decode(ids, d->skip_special);
    fwrite(text.data(), 1, text.size(), stdout);
    fputc('\n', stdout);
  });
}

}  // namespace rv::cli
