// reasonvec: command-line entry point. Parses arguments, runs one
// subcommand, and maps errors to exit codes: 0 success, 1 runtime failure
// (bad input, I/O), 2 usage error.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "common/progress.h"

namespace rv::cli {
static std::string g_command_line;
std::vector<std::shared_ptr<void>>& option_storage() {
  static std::vector<std::shared_ptr<void>> v;
  return v;
}
const std::string& command_line() {
  return g_command_line;
}
int& exit_status() {
  static int status = 0;
  return status;
}
void log_line(const std::string& msg) {
  fprintf(stderr, "%s\n", msg.c_str());
}
}  // namespace rv::cli

int main(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = i == 0 ? "reasonvec" : argv[i];
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"$`\\") == std::string::npos;
    rv::cli::g_command_line += (i ? " " : "") + (plain ? a : "'" + a + "'");
  }
  CLI::App app{
      "reasonvec: extract, inspect, transfer and measure reasoning vectors "
      "(v = theta_GRPO - theta_SFT) on Hugging Face checkpoints.",
      "reasonvec"};
  app.set_version_flag("--version", std::string("reasonvec ") + RV_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  int threads = 0;
  bool quiet = false;
  app.add_option("--threads,-t", threads, "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--quiet,-q", quiet, "No progress bars");
  bool no_sync = false;
  app.add_flag("--no-sync", no_sync,
               "Do not fsync outputs before publishing them (faster, like cp; still never "
               "half-written after an error or Ctrl-C, but not safe against a power loss)");
  app.parse_complete_callback([&] {
    rv::set_sync_outputs(!no_sync);
    if (threads > 0) rv::set_num_threads(threads);
    rv::set_progress_enabled(!quiet);
  });
  app.footer(
      "Typical flow:\n"
      "  reasonvec extract --base SFT_DIR --tuned GRPO_DIR -o v.safetensors\n"
      "  reasonvec check   --model INSTRUCT_DIR --vector v.safetensors\n"
      "  reasonvec apply   --model INSTRUCT_DIR --vector v.safetensors --alpha 1 -o OUT_DIR\n"
      "Run 'reasonvec COMMAND --help' for a command's options.");

  rv::cli::add_synth_command(app);
  rv::cli::add_extract_command(app);
  rv::cli::add_apply_command(app);
  rv::cli::add_sparsify_command(app);
  rv::cli::add_inspect_command(app);
  rv::cli::add_compare_command(app);
  rv::cli::add_check_command(app);
  rv::cli::add_tokenize_command(app);
  rv::cli::add_chat_template_command(app);
  rv::cli::add_generate_command(app);
  rv::cli::add_export_gguf_command(app);
  rv::cli::add_serve_command(app);
  rv::cli::add_eval_command(app);
  rv::cli::add_report_command(app);
  rv::cli::add_data_command(app);
  rv::cli::add_experiment_command(app);
  rv::cli::add_lab_command(app);
  rv::cli::add_demo_command(app);
  rv::cli::add_math_verify_command(app);
  rv::cli::add_lowrank_command(app);

  rv::install_interrupt_handler();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const rv::Error& e) {
    fprintf(stderr, "reasonvec: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "reasonvec: %s\n", e.what());
    return 1;
  }
  return rv::cli::exit_status();
}
