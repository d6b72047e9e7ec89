// enclosure explain FILE [--context k=v] [--json]: a plain-language account for a reviewer.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"
#include "policy/explain.h"

namespace po = boost::program_options;

namespace launcher {

int command_explain(const Args& args) {
  po::options_description options(
      "Usage: enclosure explain [options] FILE\n\n"
      "Says in plain language what the manifest lets an agent read, write and run, where it may\n"
      "connect, its budgets and composition rules, and who approved it and why.\n"
      "Exit status: 0, or 2 for an invalid manifest.\n\nOptions");
  ManifestSource source{.allow_unresolved = true};
  options.add_options()("help,h", "show this help")(
      "context", po::value(&source.context)->composing(), "NAME=VALUE for a context variable")(
      "context-file", po::value(&source.context_file), "a JSON object of context values")(
      "json", "print the account as JSON");
  po::variables_map vm;
  if (auto done = parse_command_line("explain", args, options, po::value(&source.path), 1, vm))
    return *done;
  if (source.path.empty()) {
    return usage_error("explain", "no manifest file given", exit_code::kInvalid);
  }
  policy::Manifest manifest = load_manifest_or_throw(source);
  if (vm.count("json")) {
    std::cout << policy::explain_json(manifest).dump(2) << "\n";
  } else {
    std::cout << policy::explain_text(manifest);
  }
  return exit_code::kSuccess;
}

}  // namespace launcher
