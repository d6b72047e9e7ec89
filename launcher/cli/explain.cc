// enclosure explain FILE [--context k=v] [--json]: a plain-language account for a reviewer.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "policy/explain.h"

namespace po = boost::program_options;

namespace launcher {

int command_explain(const Args& args) {
  po::options_description options(
      "Usage: enclosure explain [options] FILE\n\n"
      "Says in plain language what the manifest lets an agent read, write and run, where it may\n"
      "connect, its budgets and composition rules, and who approved it and why.\n"
      "Exit status: 0, or 2 for an invalid manifest.\n\nOptions");
  std::vector<std::string> context;
  std::string context_file, file;
  options.add_options()("help,h", "show this help")("context", po::value(&context)->composing(),
                                                    "NAME=VALUE for a context variable")(
      "context-file", po::value(&context_file), "a JSON object of context values")(
      "json", "print the account as JSON");
  po::variables_map vm;
  if (auto done = parse_command_line("explain", args, options, po::value(&file), 1, vm))
    return *done;
  if (file.empty()) {
    std::cerr << "enclosure explain: no manifest file given\n" << options;
    return 2;
  }
  policy::ContextValues values;
  std::string error;
  if (!collect_context(context, context_file, values, error)) {
    std::cerr << "enclosure explain: " << error << "\n";
    return 2;
  }
  LoadedManifest loaded = load_manifest_file(file, values, {.allow_unresolved = true});
  if (!loaded.manifest) {
    for (const std::string& e : loaded.errors)
      std::cerr << e << "\n";
    return 2;
  }
  if (vm.count("json")) {
    std::cout << policy::explain_json(*loaded.manifest).dump(2) << "\n";
  } else {
    std::cout << policy::explain_text(*loaded.manifest);
  }
  return 0;
}

}  // namespace launcher
