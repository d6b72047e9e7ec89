// enclosure: the command-line entry point; dispatches to one subcommand.
#include <cstring>
#include <iostream>
#include <map>

#include "launcher/cli/commands.h"

namespace {

struct Command {
  int (*run)(const launcher::Args&);
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> kCommands{
      {"check", {launcher::command_check, "validate manifests; print name, revision, digest"}},
      {"explain", {launcher::command_explain, "plain-language account of a manifest"}},
      {"diff", {launcher::command_diff, "what a manifest change widens or narrows"}},
      {"doctor",
       {launcher::command_doctor, "which kernel layers this host can enforce, and why not"}},
      {"run", {launcher::command_run, "start an agent inside the enclosure a manifest describes"}},
      {"collect",
       {launcher::command_collect, "accept launchers' events; write the hash-chained audit log"}},
      {"audit", {launcher::command_audit, "verify an audit log, or show it as a timeline per run"}},
      {"export",
       {launcher::command_export,
        "the manifest's syscall profile for runc, crun or Docker (oci-seccomp)"}},
      {"daemon",
       {launcher::command_daemon,
        "privileged per-node service: eBPF and cgroups for unprivileged runs"}},
      {"learn", {launcher::command_learn, "observe a run and write a least-privilege manifest"}},
  };
  return kCommands;
}

void usage(std::ostream& out) {
  out << "Usage: enclosure COMMAND [options] [args]\n\n"
         "Agent Enclosure starts AI agents inside a kernel-enforced envelope described by a\n"
         "manifest (files, tools, network, syscalls, budgets, composition rules).\n\n"
         "Commands:\n";
  for (const auto& [name, c] : commands()) {
    out << "  " << name << std::string(10 - name.size(), ' ') << c.summary << "\n";
  }
  out << "\n`enclosure COMMAND --help` describes each command.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(std::cout);
    return 0;
  }
  if (name == "--version") {
    std::cout << "enclosure " << ENCLOSURE_VERSION << " (manifest enclosure/v1)\n";
    return 0;
  }
  auto it = commands().find(name);
  if (it == commands().end()) {
    std::cerr << "enclosure: unknown command \"" << name << "\"\n\n";
    usage(std::cerr);
    return 2;
  }
  launcher::Args args(argv + 2, argv + argc);
  return it->second.run(args);
}
