// Reading whole files: the one reader every folder uses.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace launcher {

inline constexpr size_t kNoFileLimit = static_cast<size_t>(-1);

// The whole content of a regular file (or of a /proc or /sys file), at most `max_bytes`.
// Throws LaunchError naming the file and the errno text when it cannot be opened or read, when
// it is a directory, or when it is larger than `max_bytes`.
std::string read_file(const std::string& path, size_t max_bytes = kNoFileLimit);

// The same, but nullopt when the file does not exist (ENOENT); every other failure throws.
std::optional<std::string> read_file_if_exists(const std::string& path,
                                               size_t max_bytes = kNoFileLimit);

// A file beneath an open directory (a /proc/PID, a cgroup directory): nullopt when it cannot be
// opened or read, which includes a process that has gone since (ESRCH). Never throws.
std::optional<std::string> read_file_at(int dir_fd, const char* name);

// Everything on standard input until end of file, at most `max_bytes` (`-m -`). Throws
// LaunchError naming "standard input".
std::string read_standard_input(size_t max_bytes = kNoFileLimit);

}  // namespace launcher
