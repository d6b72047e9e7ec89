#include "bpf/trigger_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

namespace bpf {
namespace {

struct DirectoryCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};
using OpenDirectory = std::unique_ptr<DIR, DirectoryCloser>;

// A depth-first walk that keeps one open directory per level (no path is ever resolved twice,
// so a rename during the walk cannot send it elsewhere).
class TriggerTreeWalk {
 public:
  TriggerTreeWalk(std::string root, size_t limit)
      : root_(std::move(root)), limit_(limit), mounts_(read_mount_table()) {}

  std::vector<FileKey> keys() {
    int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      // A file, or nothing: its own key (or its absence) is resolved elsewhere.
      if (errno == ENOTDIR || errno == ENOENT) return {};
      fail("open " + root_, errno);
    }
    struct statx stx {};
    if (::statx(fd, "", AT_EMPTY_PATH, kStatxMask, &stx) != 0) {
      int err = errno;
      ::close(fd);
      fail("stat " + root_, err);
    }
    enter(fd, root_);
    add(stx);
    while (!open_.empty()) {
      errno = 0;
      const dirent* entry = ::readdir(open_.back().get());
      if (!entry) {
        if (errno != 0) fail("list " + paths_.back(), errno);
        open_.pop_back();
        paths_.pop_back();
        continue;
      }
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
        visit(entry->d_name);
    }
    return std::move(keys_);
  }

 private:
  static constexpr unsigned kStatxMask = STATX_TYPE | STATX_INO | STATX_MNT_ID;

  std::string root_;
  size_t limit_;
  std::map<uint64_t, MountDevice> mounts_;
  bool mounts_reread_ = false;
  std::set<std::pair<uint64_t, uint64_t>> seen_;
  std::vector<FileKey> keys_;
  std::vector<OpenDirectory> open_;  // the directories being listed, the root's first
  std::vector<std::string> paths_;   // their paths, for messages

  [[noreturn]] void fail(const std::string& what, int err) {
    throw BpfError("cannot " + what + " (in the trigger tree " + root_ +
                   "): " + std::strerror(err));
  }

  void enter(int fd, const std::string& path) {
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
      int err = errno;
      ::close(fd);
      fail("list " + path, err);
    }
    open_.emplace_back(dir);
    paths_.push_back(path);
  }

  // The key bpf::file_key gives the file `stx` describes.
  FileKey key_of(const struct statx& stx, const std::string& path) {
    dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    if (stx.stx_mask & STATX_MNT_ID) {
      auto mount = mounts_.find(stx.stx_mnt_id);
      if (mount == mounts_.end() && !mounts_reread_) {
        mounts_ = read_mount_table();  // mounted since the walk began
        mounts_reread_ = true;
        mount = mounts_.find(stx.stx_mnt_id);
      }
      if (mount == mounts_.end())
        fail("find the mount of " + path + " in /proc/self/mountinfo", ENOENT);
      if (mount->second.overlay) dev = mount->second.dev;
    }
    return FileKey{kernel_dev(dev), stx.stx_ino};
  }

  // Records the identity; false when it was seen before (a hard link, a bind mount).
  bool add(const struct statx& stx, const std::string& path = "") {
    FileKey key = key_of(stx, path.empty() ? root_ : path);
    if (!seen_.insert({key.dev, key.ino}).second) return false;
    if (seen_.size() > limit_) {
      throw BpfError("the trigger tree " + root_ + " holds more than " + std::to_string(limit_) +
                     " files and directories, more than the run's read triggers may key in the "
                     "kernel (each by identity, so that a link or a rename out of the tree still "
                     "fires): name a smaller tree");
    }
    keys_.push_back(key);
    return true;
  }

  void visit(const char* name) {
    int parent = ::dirfd(open_.back().get());
    std::string path = paths_.back() + "/" + name;
    struct statx stx {};
    if (::statx(parent, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kStatxMask, &stx) != 0) {
      if (errno == ENOENT) return;  // removed while listed
      fail("stat " + path, errno);
    }
    if (S_ISLNK(stx.stx_mode) || !add(stx, path) || !S_ISDIR(stx.stx_mode)) return;
    int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return;
      fail("open the directory " + path, errno);
    }
    enter(fd, path);
  }
};

}  // namespace

std::vector<FileKey> trigger_tree_keys(const std::string& root, size_t limit) {
  return TriggerTreeWalk(root, limit).keys();
}

uint64_t kernel_dev(dev_t dev) {
  return (static_cast<uint64_t>(major(dev)) << 20) | static_cast<uint64_t>(minor(dev));
}

std::map<uint64_t, MountDevice> read_mount_table() {
  std::map<uint64_t, MountDevice> mounts;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    uint64_t id = 0, parent = 0;
    unsigned dev_major = 0, dev_minor = 0;
    char colon = 0;
    if (!(fields >> id >> parent >> dev_major >> colon >> dev_minor) || colon != ':') continue;
    std::string fs_type;
    if (size_t separator = line.find(" - "); separator != std::string::npos)
      std::istringstream(line.substr(separator + 3)) >> fs_type;
    mounts[id] = {makedev(dev_major, dev_minor), fs_type == "overlay"};
  }
  return mounts;
}

}  // namespace bpf
