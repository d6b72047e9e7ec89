// The command line of the subcommands: one parser for those that take options and file
// operands (check, explain, diff, export, audit verify|show), one way of reporting usage errors,
// and the split at "--" of those that run a program (run, learn).
#pragma once

#include <boost/program_options.hpp>

#include <optional>
#include <string>
#include <vector>

#include "launcher/cli/commands.h"

namespace launcher {

// Parses `args` against `options` plus the operands (positional, at most `max_operands`; -1
// for any number) stored through `operands` (e.g. po::value(&files)). Handles --help.
// Returns the exit status when the command is already done — 0 after --help, 2 after a usage
// error printed as "enclosure COMMAND: ..." with the options — and nullopt otherwise.
std::optional<int> parse_command_line(const std::string& command, const Args& args,
                                      const boost::program_options::options_description& options,
                                      boost::program_options::value_semantic* operands,
                                      int max_operands, boost::program_options::variables_map& vm);

// Parses a command line that has options only (run and learn: those before "--"; collect,
// daemon, doctor). Handles --help. Returns the exit status when the command is already done —
// 0 after --help, `usage_status` after a usage error — and nullopt otherwise. `missing_dash`
// (run, learn) adds the likely mistake to an unknown option or stray operand: the command was
// given without "--" in front of it. `hidden` options are accepted but not shown in --help.
std::optional<int> parse_options_only(
    const std::string& command, const Args& args,
    const boost::program_options::options_description& options,
    boost::program_options::variables_map& vm, int usage_status, bool missing_dash = false,
    const boost::program_options::options_description* hidden = nullptr);

// Prints a usage error as one line, "enclosure COMMAND: message (see enclosure COMMAND
// --help)", and returns `status`.
int usage_error(const std::string& command, const std::string& message, int status);

// Whether `all` has a "--" (run and learn: the command comes after it).
bool has_double_dash(const Args& all);

// Splits the arguments of a command that runs a program at the first "--": the options before
// it into `options`, everything after it, untouched by option parsing, into `command`.
void split_at_double_dash(const Args& all, Args& options, std::vector<std::string>& command);

}  // namespace launcher
