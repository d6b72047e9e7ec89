// enclosure: the command-line entry point; dispatches to one subcommand.
#include <cstring>
#include <iostream>
#include <map>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"

namespace {

namespace exit_code = launcher::exit_code;

struct Command {
  int (*run)(const launcher::Args&);
  const char* summary;
  // The status for an invalid manifest or an unexpected error: a launcher error (125) for the
  // commands that start or serve agents, else the command's own (policy/MANIFEST.md).
  int invalid_status = exit_code::kInvalid;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> kCommands{
      {"check", {launcher::command_check, "validate manifests; print name, revision, digest"}},
      {"explain", {launcher::command_explain, "plain-language account of a manifest"}},
      {"diff", {launcher::command_diff, "what a manifest change widens or narrows"}},
      {"doctor",
       {launcher::command_doctor, "which kernel layers this host can enforce, and why not"}},
      {"run",
       {launcher::command_run, "start an agent inside the enclosure a manifest describes",
        exit_code::kLaunchError}},
      {"collect",
       {launcher::command_collect, "accept launchers' events; write the hash-chained audit log",
        exit_code::kFailure}},
      {"audit", {launcher::command_audit, "verify an audit log, or show it as a timeline per run"}},
      {"export",
       {launcher::command_export,
        "the manifest's syscall profile for runc, crun or Docker (oci-seccomp)"}},
      {"daemon",
       {launcher::command_daemon,
        "privileged per-node service: eBPF and cgroups for unprivileged runs",
        exit_code::kLaunchError}},
      {"init",
       {launcher::command_init, "write a starter manifest for a coding, data or browsing agent",
        exit_code::kFailure}},
      {"ps", {launcher::command_ps, "the live enclosures: run, manifest, agent, uptime, budgets"}},
      {"stop",
       {launcher::command_stop, "end a live enclosure: SIGTERM, grace, SIGKILL",
        exit_code::kFailure}},
      {"learn",
       {launcher::command_learn, "observe a run and write a least-privilege manifest",
        exit_code::kLaunchError}},
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

// The command boundary: errors thrown where they happen end here, as one message on stderr
// and the exit status they carry.
int run_command(const std::string& name, const Command& command, const launcher::Args& args) {
  try {
    return command.run(args);
  } catch (const launcher::InvalidManifest& e) {
    launcher::print_invalid_manifest(name, e);
    return command.invalid_status;
  } catch (const launcher::LaunchError& e) {
    std::cerr << "enclosure " << name << ": " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "enclosure " << name << ": " << e.what() << "\n";
    return command.invalid_status;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(std::cerr);
    return exit_code::kInvalid;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(std::cout);
    return exit_code::kSuccess;
  }
  if (name == "--version") {
    std::cout << "enclosure " << ENCLOSURE_VERSION << " (manifest enclosure/v1)\n";
    return exit_code::kSuccess;
  }
  auto it = commands().find(name);
  if (it == commands().end()) {
    std::cerr << "enclosure: unknown command \"" << name << "\"\n\n";
    usage(std::cerr);
    return exit_code::kInvalid;
  }
  launcher::Args args(argv + 2, argv + argc);
  return run_command(name, it->second, args);
}
