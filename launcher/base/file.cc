#include "launcher/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "launcher/base/error.h"
#include "launcher/base/fd.h"

namespace launcher {
namespace {

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
      throw LaunchError(path + ": larger than " + std::to_string(max_bytes) + " bytes");
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

}  // namespace launcher
