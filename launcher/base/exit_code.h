// The exit statuses of `enclosure` (policy/MANIFEST.md, "Exit status"): one name for each, so
// no command spells a number.
#pragma once

namespace launcher::exit_code {

constexpr int kSuccess = 0;
// A command's own failure that is not one of the statuses below (a log that does not verify,
// a collector that cannot start).
constexpr int kFailure = 1;
// `check` (and `diff`, `explain`, `export`, `audit`): an invalid manifest or a usage error.
constexpr int kInvalid = 2;
// `run`: a budget ended the enclosure.
constexpr int kBudget = 124;
// `run`, `learn`, `daemon`: a launcher error (invalid manifest, a layer the kernel cannot
// enforce, missing privileges); the agent was not started.
constexpr int kLaunchError = 125;
// `run`: the command is not an allowed tool, or cannot be executed.
constexpr int kNotExecutable = 126;
// `run`: the command's file was not found.
constexpr int kNotFound = 127;
// `run`: the agent was killed by signal N: kSignalBase + N.
constexpr int kSignalBase = 128;

}  // namespace launcher::exit_code
