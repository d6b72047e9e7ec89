#include "launcher/run/executable.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/fd.h"

namespace launcher {

ExecutableInfo inspect_executable(const std::string& path) {
  ExecutableInfo info;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    info.error = std::strerror(errno);
    info.kind = errno == ENOENT || errno == ENOTDIR ? ExecutableInfo::Kind::missing
                                                    : ExecutableInfo::Kind::not_executable;
    return info;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
    info.kind = ExecutableInfo::Kind::not_executable;
    info.error = S_ISDIR(st.st_mode) ? "is a directory" : "is not an executable regular file";
    return info;
  }
  unsigned char head[256] = {};
  ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
  if (n < 4) {
    info.kind = ExecutableInfo::Kind::unknown;
    return info;
  }
  if (head[0] == '#' && head[1] == '!') {
    info.kind = ExecutableInfo::Kind::script;
    size_t i = 2;
    while (i < static_cast<size_t>(n) && (head[i] == ' ' || head[i] == '\t'))
      ++i;
    size_t start = i;
    while (i < static_cast<size_t>(n) && head[i] != ' ' && head[i] != '\t' && head[i] != '\n')
      ++i;
    info.interpreter.assign(reinterpret_cast<const char*>(head) + start, i - start);
    return info;
  }
  if (std::memcmp(head, ELFMAG, SELFMAG) != 0) {
    info.kind = ExecutableInfo::Kind::unknown;
    return info;
  }
  info.kind = ExecutableInfo::Kind::elf;
  Elf64_Ehdr eh{};
  if (head[EI_CLASS] != ELFCLASS64 || ::pread(fd.get(), &eh, sizeof eh, 0) != sizeof eh ||
      eh.e_machine != EM_X86_64) {
    info.foreign_elf = true;
    return info;
  }
  for (unsigned i = 0; i < eh.e_phnum && i < 256; ++i) {
    Elf64_Phdr ph{};
    off_t off = static_cast<off_t>(eh.e_phoff + i * static_cast<uint64_t>(eh.e_phentsize));
    if (::pread(fd.get(), &ph, sizeof ph, off) != sizeof ph) break;
    if (ph.p_type != PT_INTERP || ph.p_filesz == 0 || ph.p_filesz > 4096) continue;
    std::string interp(ph.p_filesz, '\0');
    if (::pread(fd.get(), interp.data(), interp.size(), static_cast<off_t>(ph.p_offset)) !=
        static_cast<ssize_t>(interp.size())) {
      break;
    }
    interp.resize(std::strlen(interp.c_str()));
    info.interpreter = interp;
    break;
  }
  return info;
}

}  // namespace launcher
