// What kind of program a tool is: an ELF executable (and its interpreter, the dynamic loader,
// which must be executable inside too) or a script (whose #! interpreter must be a tool).
#pragma once

#include <string>

namespace launcher {

struct ExecutableInfo {
  enum class Kind { missing, not_executable, elf, script, unknown } kind = Kind::missing;
  std::string interpreter;   // PT_INTERP of an ELF, or the #! program of a script
  bool foreign_elf = false;  // an ELF for another architecture or word size (its syscalls die)
  std::string error;         // why `missing` or `not_executable`
};

// Reads the file's header (no execution). Follows symlinks, like execve.
ExecutableInfo inspect_executable(const std::string& path);

}  // namespace launcher
