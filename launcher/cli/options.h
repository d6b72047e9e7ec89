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

// Splits the arguments of a command that runs a program at the first "--": the options before
// it into `options`, everything after it, untouched by option parsing, into `command`.
void split_at_double_dash(const Args& all, Args& options, std::vector<std::string>& command);

}  // namespace launcher
