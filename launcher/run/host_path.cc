#include "launcher/run/host_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>

#include "launcher/base/error.h"
#include "policy/path.h"

namespace launcher {

namespace {

std::string join(const std::vector<std::string>& segments) {
  std::string out;
  for (const std::string& s : segments)
    out += "/" + s;
  return out.empty() ? "/" : out;
}

UniqueFd open_segments(int root_fd, const std::vector<std::string>& segments) {
  UniqueFd cur(::fcntl(root_fd, F_DUPFD_CLOEXEC, 3));
  for (const std::string& s : segments) {
    UniqueFd next(::openat(cur.get(), s.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next) throw_errno("resolve " + join(segments));
    cur = std::move(next);
  }
  return cur;
}

}  // namespace

ResolvedHostPath resolve_host_path(int root_fd, const std::string& path, bool follow_final,
                                   const std::vector<std::string>& untrusted) {
  ResolvedHostPath out;
  std::deque<std::string> pending;
  for (std::string& s : policy::path_segments(path))
    pending.push_back(std::move(s));
  std::vector<std::string> resolved;
  UniqueFd cur(::fcntl(root_fd, F_DUPFD_CLOEXEC, 3));
  if (!cur) throw_errno("resolve " + path + ": dup");
  int links = 0;
  while (!pending.empty()) {
    std::string name = pending.front();
    pending.pop_front();
    if (name == ".") continue;
    if (name == "..") {
      if (!resolved.empty()) resolved.pop_back();
      cur = open_segments(root_fd, resolved);
      continue;
    }
    UniqueFd next(::openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next) {
      if (errno == ENOENT || errno == ENOTDIR) {
        resolved.push_back(name);
        for (const std::string& rest : pending)
          resolved.push_back(rest);
        out.real = join(resolved);
        return out;
      }
      throw_errno("resolve " + path + " at " + join(resolved) + "/" + name);
    }
    struct stat st {};
    if (::fstat(next.get(), &st) != 0) throw_errno("resolve " + path + ": fstat");
    if (S_ISLNK(st.st_mode) && (!pending.empty() || follow_final)) {
      std::vector<std::string> at = resolved;
      at.push_back(name);
      std::string location = join(at);
      for (const std::string& dir : untrusted) {
        if (policy::path_is_under(location, dir)) {
          throw LaunchError(path + ": passes through the symlink " + location +
                            ", which lies inside the writable grant " + dir +
                            " (an agent could have planted it); refusing to follow it");
        }
      }
      if (++links > 40) throw LaunchError(path + ": too many levels of symbolic links");
      char buf[4096];
      ssize_t n = ::readlinkat(next.get(), "", buf, sizeof buf - 1);
      if (n < 0) throw_errno("resolve " + path + ": readlink " + location);
      std::string target(buf, static_cast<size_t>(n));
      out.links.emplace_back(location, target);
      std::vector<std::string> target_segments = policy::path_segments(target);
      for (auto it = target_segments.rbegin(); it != target_segments.rend(); ++it) {
        pending.push_front(*it);
      }
      if (!target.empty() && target[0] == '/') {
        resolved.clear();
        cur = open_segments(root_fd, resolved);
      }
      continue;
    }
    resolved.push_back(name);
    if (pending.empty()) out.is_symlink = S_ISLNK(st.st_mode);
    cur = std::move(next);
  }
  out.exists = true;
  out.real = join(resolved);
  out.fd = std::move(cur);
  return out;
}

}  // namespace launcher
