// enclosure check FILE... : validate; print name, revision and digest; exit 0 valid, 2 invalid.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"

namespace po = boost::program_options;

namespace launcher {

int command_check(const Args& args) {
  po::options_description options(
      "Usage: enclosure check [options] FILE...\n\n"
      "Validates manifests. For each valid one prints its name, "
      "revision and digest.\nExit status: 0 when every file is "
      "valid, 2 otherwise. Errors name the JSON path at fault.\n\n"
      "Options");
  std::vector<std::string> files, context;
  std::string context_file;
  options.add_options()("help,h", "show this help")(
      "context", po::value(&context)->composing(),
      "NAME=VALUE for a context variable (repeatable); without a value a variable that has no "
      "default is left as a ${NAME} placeholder and the digest is the template's")(
      "context-file", po::value(&context_file), "a JSON object of context values")(
      "quiet,q", "print errors only");
  po::variables_map vm;
  if (auto done = parse_command_line("check", args, options, po::value(&files), -1, vm))
    return *done;
  if (files.empty()) {
    std::cerr << "enclosure check: no manifest file given\n" << options;
    return 2;
  }
  policy::ContextValues values;
  std::string error;
  if (!collect_context(context, context_file, values, error)) {
    std::cerr << "enclosure check: " << error << "\n";
    return 2;
  }
  bool all_valid = true;
  for (const std::string& file : files) {
    LoadedManifest loaded = load_manifest_file(file, values, {.allow_unresolved = true});
    if (!loaded.manifest) {
      all_valid = false;
      for (const std::string& e : loaded.errors)
        std::cerr << e << "\n";
      continue;
    }
    if (vm.count("quiet")) continue;
    const policy::Manifest& m = *loaded.manifest;
    std::cout << file << ": valid: " << m.metadata.name << " revision "
              << (m.metadata.revision ? std::to_string(*m.metadata.revision) : "-") << " "
              << m.digest;
    if (m.is_template()) {
      std::cout << " (template; no value for:";
      for (const std::string& n : m.unresolved)
        std::cout << " " << n;
      std::cout << ")";
    }
    std::cout << "\n";
  }
  return all_valid ? 0 : 2;
}

}  // namespace launcher
