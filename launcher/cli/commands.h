// The subcommands of `enclosure`. Each takes the arguments after its name and returns the
// process exit status (policy/MANIFEST.md, "Command line").
#pragma once

#include <string>
#include <vector>

namespace launcher {

using Args = std::vector<std::string>;

int command_check(const Args& args);
int command_explain(const Args& args);
int command_diff(const Args& args);
int command_run(const Args& args);
int command_doctor(const Args& args);
int command_collect(const Args& args);
int command_audit(const Args& args);
int command_export(const Args& args);
int command_learn(const Args& args);
int command_daemon(const Args& args);
int command_init(const Args& args);
int command_ps(const Args& args);
int command_stop(const Args& args);

}  // namespace launcher
