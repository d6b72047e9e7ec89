// enclosure diff OLD NEW: which permissions and budgets a change widens or narrows.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"
#include "policy/diff.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

// A variable one of the two does not declare is not an error here: the values are applied to
// each manifest that declares them.
policy::Manifest load_with_declared_context(const std::string& file,
                                            const policy::ContextValues& values) {
  policy::Manifest probe = load_manifest_or_throw(file, {}, /*allow_unresolved=*/true);
  policy::ContextValues mine;
  for (const policy::ContextVariable& v : probe.context) {
    if (auto it = values.find(v.name); it != values.end()) mine[v.name] = it->second;
  }
  return load_manifest_or_throw(file, mine, /*allow_unresolved=*/true);
}

// OLD and NEW, or InvalidManifest with the errors of both.
std::pair<policy::Manifest, policy::Manifest> load_both(const std::vector<std::string>& files,
                                                        const policy::ContextValues& values) {
  std::optional<policy::Manifest> loaded[2];
  std::vector<std::string> errors;
  for (size_t i = 0; i < 2; ++i) {
    try {
      loaded[i] = load_with_declared_context(files[i], values);
    } catch (const InvalidManifest& e) {
      errors.insert(errors.end(), e.diagnostics().begin(), e.diagnostics().end());
    }
  }
  if (!errors.empty()) throw InvalidManifest(std::move(errors));
  return {std::move(*loaded[0]), std::move(*loaded[1])};
}

}  // namespace

int command_diff(const Args& args) {
  po::options_description options(
      "Usage: enclosure diff [options] OLD NEW\n\n"
      "Lists, per section, what NEW widens (more paths, tools, destinations, larger budgets,\n"
      "removed rules) and narrows compared with OLD.\n"
      "Exit status: 0 when the permission sets are equal, 1 when they differ (with\n"
      "--fail-on-widen: 1 only when something is widened or changed in a way that may widen),\n"
      "2 when a manifest is invalid.\n\nOptions");
  std::vector<std::string> files, context;
  std::string context_file;
  options.add_options()("help,h", "show this help")(
      "fail-on-widen", "exit 1 only when the change widens permissions (a CI gate)")(
      "context", po::value(&context)->composing(), "NAME=VALUE, applied to both manifests")(
      "context-file", po::value(&context_file), "a JSON object of context values")(
      "json", "print the changes as JSON");
  po::variables_map vm;
  if (auto done = parse_command_line("diff", args, options, po::value(&files), 2, vm)) return *done;
  if (files.size() != 2) {
    return usage_error("diff", "expected two manifest files, OLD and NEW", exit_code::kInvalid);
  }
  auto [before, after] = load_both(files, collect_context(context, context_file));
  std::vector<policy::DiffEntry> entries = policy::diff_manifests(before, after);
  if (vm.count("json")) {
    std::cout << policy::diff_json(entries).dump(2) << "\n";
  } else {
    std::cout << policy::diff_text(entries);
  }
  // 1: the permission sets differ (or, for the CI gate, widen); the documented diff status.
  bool changed = vm.count("fail-on-widen") ? policy::widens(entries) : policy::differs(entries);
  return changed ? exit_code::kFailure : exit_code::kSuccess;
}

}  // namespace launcher
