// enclosure init KIND [-o FILE] [--force]: writes a starter manifest for a coding, data or
// browsing agent (the project's examples) and prints, as its commentary, the plain-language
// account `enclosure explain` gives of it — what to change before the first run.
#include <boost/program_options.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/base/fd.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/options.h"
#include "launcher/cli/templates.h"
#include "policy/explain.h"
#include "policy/load.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

const std::map<std::string, const char*>& kinds() {
  static const std::map<std::string, const char*> kKinds{
      {"coding", templates::kCoding},
      {"data", templates::kData},
      {"browsing", templates::kBrowsing},
  };
  return kKinds;
}

// Writes `text` to a new file `path` (0644), or over an existing one with `force`. Throws
// LaunchError (exit 1) naming the file.
void write_new_file(const std::string& path, const std::string& text, bool force) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd && errno == EEXIST) {
    throw LaunchError(path + " exists; choose another -o FILE or add --force", exit_code::kFailure);
  }
  if (!fd) throw_errno(path + ": cannot create");
  write_all(fd.get(), text.data(), text.size());
}

}  // namespace

int command_init(const Args& args) {
  po::options_description options(
      "Usage: enclosure init KIND [-o FILE] [--force]\n\n"
      "Writes a starter manifest for an agent of KIND (coding, data or browsing) to FILE\n"
      "(default KIND-agent.json in the working directory) and prints what it permits, as\n"
      "`enclosure explain` does: change the paths, tools, destinations and budgets to the task,\n"
      "then `enclosure check FILE`. Exit status: 0 written, 1 FILE exists or cannot be\n"
      "written, 2 usage.\n\nOptions");
  std::string out;
  options.add_options()("help,h", "show this help")("output,o", po::value(&out),
                                                    "the file to write (default KIND-agent.json)")(
      "force", "overwrite FILE when it exists");
  std::vector<std::string> operands;
  po::variables_map vm;
  if (auto done = parse_command_line("init", args, options, po::value(&operands), 1, vm)) {
    return *done;
  }
  if (operands.empty() || !kinds().count(operands[0])) {
    return usage_error("init", "expected a KIND: coding, data or browsing", exit_code::kInvalid);
  }
  const std::string& kind = operands[0];
  if (out.empty()) out = kind + "-agent.json";
  std::string text = kinds().at(kind);
  write_new_file(out, text, vm.count("force") > 0);
  policy::LoadResult loaded =
      policy::load_manifest(text, {}, policy::LoadOptions{.allow_unresolved = true});
  if (loaded.manifest) std::cout << policy::explain_text(*loaded.manifest);
  std::cerr << "enclosure init: wrote " << out << " (" << kind
            << " agent); review it, then: enclosure check " << out << "\n";
  return exit_code::kSuccess;
}

}  // namespace launcher
