// Absolute paths as the manifest writes them: lexical checks only (policy makes no syscalls).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace policy {

inline constexpr size_t kMaxPathLength = 4095;
// The longest path a unix socket address (sockaddr_un.sun_path, 108 bytes) holds with its NUL.
inline constexpr size_t kMaxUnixSocketPath = 107;

// "" when `path` is a normalised absolute path: starts with "/", no empty, "." or ".." segment,
// no trailing "/" (except "/" itself), no control character, segments of at most 255 bytes.
// With `template_ok`, a path starting with a ${placeholder} is not required to start with "/".
std::string check_absolute_path(std::string_view path, bool template_ok = false);

// Why a manifest the launcher writes itself (`learn`) cannot name `path` as it is on disk, or
// "" when it can: not valid UTF-8 (a manifest is JSON text), "${" (it would read as a context
// placeholder), or what check_absolute_path says.
std::string check_nameable_path(std::string_view path);

// True when `path` is `dir` or lies beneath it ("/usr/lib" is under "/usr", "/usrx" is not).
bool path_is_under(std::string_view path, std::string_view dir);

// The segments of an absolute path: "/a/b" -> {"a", "b"}; "/" -> {}.
std::vector<std::string> path_segments(std::string_view path);

// "/a/b" -> "/a"; "/a" -> "/"; "/" -> "/".
std::string parent_path(std::string_view path);

}  // namespace policy
