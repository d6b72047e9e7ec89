// enclosure explain FILE [--context k=v] [--json]: a plain-language account for a reviewer.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/commands.h"
#include "launcher/manifest_file.h"
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
  options.add_options()("help,h", "show this help")(
      "context", po::value(&context)->composing(), "NAME=VALUE for a context variable")(
      "context-file", po::value(&context_file), "a JSON object of context values")(
      "json", "print the account as JSON");
  po::options_description hidden;
  hidden.add_options()("file", po::value(&file));
  po::positional_options_description positional;
  positional.add("file", 1);
  po::options_description all;
  all.add(options).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "enclosure explain: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
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
    for (const std::string& e : loaded.errors) std::cerr << e << "\n";
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
