#include "launcher/run/seccomp_notify.h"

#include <linux/audit.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "launcher/base/error.h"

namespace launcher {
namespace {

constexpr uint32_t kX32Bit = 0x40000000;

std::string abi_name(uint32_t arch, int nr) {
  switch (arch) {
    case AUDIT_ARCH_X86_64:
      return (static_cast<uint32_t>(nr) & kX32Bit) ? "x32" : "x86_64";
    case AUDIT_ARCH_I386:
      return "i386";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "arch 0x%08x", arch);
      return buf;
    }
  }
}

}  // namespace

SeccompListener::SeccompListener(UniqueFd fd) : fd_(std::move(fd)) {
  if (seccomp_notify_alloc(&req_, &resp_) != 0)
    throw LaunchError("seccomp: seccomp_notify_alloc failed");
}

SeccompListener::~SeccompListener() {
  seccomp_notify_free(req_, resp_);
}

std::optional<SeccompNotice> SeccompListener::receive() {
  // The kernel refuses a receive buffer that is not zeroed (libseccomp 2.5.4 does not clear it).
  std::memset(req_, 0, sizeof *req_);
  if (int rc = seccomp_notify_receive(fd_.get(), req_); rc != 0) return std::nullopt;
  SeccompNotice n;
  n.id = req_->id;
  n.pid = static_cast<pid_t>(req_->pid);
  n.arch = req_->data.arch;
  n.nr = req_->data.nr;
  for (int i = 0; i < 6; ++i)
    n.args[static_cast<size_t>(i)] = req_->data.args[i];
  n.abi = abi_name(n.arch, n.nr);
  n.foreign_abi = n.abi != "x86_64";
  uint32_t scmp_arch = n.arch == AUDIT_ARCH_X86_64 && n.foreign_abi ? SCMP_ARCH_X32 : n.arch;
  int number = n.abi == "x32" ? static_cast<int>(static_cast<uint32_t>(n.nr) & ~kX32Bit) : n.nr;
  char* name = seccomp_syscall_resolve_num_arch(scmp_arch, number);
  if (!name && n.abi == "x32") name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X32, n.nr);
  n.syscall = name ? name : "nr " + std::to_string(n.nr);
  std::free(name);
  return n;
}

void SeccompListener::fail(const SeccompNotice& notice, int err) {
  std::memset(resp_, 0, sizeof *resp_);
  resp_->id = notice.id;
  resp_->error = -err;
  resp_->val = 0;
  resp_->flags = 0;
  seccomp_notify_respond(fd_.get(), resp_);  // ENOENT: the caller died meanwhile; nothing to do
}

void SeccompListener::allow(const SeccompNotice& notice) {
  std::memset(resp_, 0, sizeof *resp_);
  resp_->id = notice.id;
  resp_->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  seccomp_notify_respond(fd_.get(), resp_);
}

bool SeccompListener::kill_caller(const SeccompNotice& notice) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, notice.pid, 0)));
  if (!pidfd) return false;
  // The notification still pending means the pid still names the caller we opened.
  if (seccomp_notify_id_valid(fd_.get(), notice.id) != 0) return false;
  return ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) == 0;
}

}  // namespace launcher
