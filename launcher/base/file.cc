#include "launcher/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "launcher/base/error.h"
#include "launcher/base/fd.h"

namespace launcher {
namespace {

// "16 MiB" for a whole number of MiB, else "N bytes".
std::string size_text(size_t bytes) {
  constexpr size_t kMiB = size_t{1} << 20;
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  return std::to_string(bytes) + " bytes";
}

std::string read_open_file(int fd, const std::string& path, size_t max_bytes) {
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) throw LaunchError(path + ": is a directory");
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(path + ": read failed");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      throw LaunchError(path + ": larger than " + size_text(max_bytes));
    }
  }
}

}  // namespace

std::string read_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) throw_errno(path + ": cannot open");
  return read_open_file(fd.get(), path, max_bytes);
}

std::optional<std::string> read_file_if_exists(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd && errno == ENOENT) return std::nullopt;
  if (!fd) throw_errno(path + ": cannot open");
  return read_open_file(fd.get(), path, max_bytes);
}

std::string read_standard_input(size_t max_bytes) {
  return read_open_file(STDIN_FILENO, "standard input", max_bytes);
}

std::optional<std::string> read_file_at(int dir_fd, const char* name) {
  UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  if (n < 0) return std::nullopt;
  return out;
}

}  // namespace launcher
