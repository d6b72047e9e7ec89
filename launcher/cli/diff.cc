// enclosure diff OLD NEW: which permissions and budgets a change widens or narrows.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "policy/diff.h"

namespace po = boost::program_options;

namespace launcher {

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
    std::cerr << "enclosure diff: expected two manifest files, OLD and NEW\n" << options;
    return 2;
  }
  policy::ContextValues values;
  std::string error;
  if (!collect_context(context, context_file, values, error)) {
    std::cerr << "enclosure diff: " << error << "\n";
    return 2;
  }
  // A variable one of the two does not declare is not an error here: the values are applied to
  // each manifest that declares them.
  auto load = [&](const std::string& file) {
    LoadedManifest probe = load_manifest_file(file, {}, {.allow_unresolved = true});
    if (!probe.manifest) return probe;
    policy::ContextValues mine;
    for (const policy::ContextVariable& v : probe.manifest->context) {
      if (auto it = values.find(v.name); it != values.end()) mine[v.name] = it->second;
    }
    return load_manifest_file(file, mine, {.allow_unresolved = true});
  };
  LoadedManifest before = load(files[0]);
  LoadedManifest after = load(files[1]);
  bool ok = true;
  for (const LoadedManifest* l : {&before, &after}) {
    if (!l->manifest) {
      ok = false;
      for (const std::string& e : l->errors)
        std::cerr << e << "\n";
    }
  }
  if (!ok) return 2;
  std::vector<policy::DiffEntry> entries =
      policy::diff_manifests(*before.manifest, *after.manifest);
  if (vm.count("json")) {
    std::cout << policy::diff_json(entries).dump(2) << "\n";
  } else {
    std::cout << policy::diff_text(entries);
  }
  if (vm.count("fail-on-widen")) return policy::widens(entries) ? 1 : 0;
  return policy::differs(entries) ? 1 : 0;
}

}  // namespace launcher
