// Subcommand registration. Each cmd_*.cpp adds one subcommand to the app;
// its callback calls the library and lets rv::Error propagate to main(),
// which prints "reasonvec: <message>" and exits 1.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <utility>
#include <vector>

namespace rv::cli {

// Objects bound to CLI11 options must outlive parsing; they are owned here
// until exit (so leak checkers see them freed, not lost).
std::vector<std::shared_ptr<void>>& option_storage();
template <class T, class... A>
T* keep_alive(A&&... a) {
  auto p = std::make_shared<T>(std::forward<A>(a)...);
  option_storage().push_back(p);
  return p.get();
}

// The full command line as typed (recorded in provenance metadata).
const std::string& command_line();
// Prints a user-facing note/warning to stderr (library Log sink).
void log_line(const std::string& msg);
// Exit status main() returns after a command that ran without error (default
// 0); for commands whose answer is the status, like `math-verify --gold --pred`.
int& exit_status();

void add_synth_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);  // tokenize + detokenize
void add_chat_template_command(CLI::App& app);
void add_export_gguf_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_extract_command(CLI::App& app);
void add_lab_command(CLI::App& app);
void add_apply_command(CLI::App& app);
void add_sparsify_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_check_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_experiment_command(CLI::App& app);
void add_math_verify_command(CLI::App& app);
void add_lowrank_command(CLI::App& app);

}  // namespace rv::cli
