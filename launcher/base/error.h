// Errors that carry their context: what was being done, on which object, and the errno text.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace launcher {

// A failure of the launcher itself (exit 125 for `run`), with a message fit for the user.
class LaunchError : public std::runtime_error {
 public:
  explicit LaunchError(const std::string& what, int exit_code = 125)
      : std::runtime_error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// "what: strerror(errno)" as a LaunchError; call right after the failing call.
[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
  throw LaunchError(what + ": " + std::strerror(err));
}

// Writes a whole buffer, retrying on EINTR and short writes. Returns false on error.
bool write_all(int fd, const void* data, size_t size);

}  // namespace launcher
