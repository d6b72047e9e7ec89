// enclosure check FILE... : validate; print name, revision and digest; exit 0 valid, 2 invalid.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

// "FILE: valid: NAME revision R DIGEST", and the variables a template leaves open.
void print_valid(const std::string& file, const policy::Manifest& m) {
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

}  // namespace

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
    return usage_error("check", "no manifest file given", exit_code::kInvalid);
  }
  policy::ContextValues values = collect_context(context, context_file);
  bool all_valid = true;
  for (const std::string& file : files) {
    try {
      policy::Manifest m = load_manifest_or_throw(file, values, /*allow_unresolved=*/true);
      if (!vm.count("quiet")) print_valid(file, m);
    } catch (const InvalidManifest& e) {
      // Every file is checked; each invalid one is reported.
      all_valid = false;
      print_invalid_manifest("check", e);
    }
  }
  return all_valid ? exit_code::kSuccess : exit_code::kInvalid;
}

}  // namespace launcher
