#include "launcher/run/seccomp_filter.h"

#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "launcher/base/error.h"

namespace launcher {
namespace {

// x86_64 numbers end below 512: x32 calls carry bit 30 and are refused as a foreign ABI.
constexpr int kLastNativeSyscall = 512;

uint32_t action_for(policy::SeccompVerdict v) {
  switch (v) {
    case policy::SeccompVerdict::allow:
      return SCMP_ACT_ALLOW;
    case policy::SeccompVerdict::deny:
      return SCMP_ACT_NOTIFY;
    case policy::SeccompVerdict::enosys:
      return SCMP_ACT_ERRNO(ENOSYS);
    case policy::SeccompVerdict::gate:
      return SCMP_ACT_NOTIFY;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_arg_cmp to_cmp(const policy::SeccompCondition& c) {
  scmp_arg_cmp cmp{};
  cmp.arg = c.arg;
  switch (c.op) {
    case policy::SeccompOp::eq:
      cmp.op = SCMP_CMP_EQ;
      cmp.datum_a = c.value;
      break;
    case policy::SeccompOp::ne:
      cmp.op = SCMP_CMP_NE;
      cmp.datum_a = c.value;
      break;
    case policy::SeccompOp::gt:
      cmp.op = SCMP_CMP_GT;
      cmp.datum_a = c.value;
      break;
    case policy::SeccompOp::masked_eq:
      cmp.op = SCMP_CMP_MASKED_EQ;
      cmp.datum_a = c.mask;
      cmp.datum_b = c.value;
      break;
  }
  return cmp;
}

// The highest x86_64 system call number this libseccomp names.
int highest_named_syscall() {
  int highest = 0;
  for (int nr = 0; nr < kLastNativeSyscall; ++nr) {
    if (char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr)) {
      highest = nr;
      std::free(name);
    }
  }
  return highest;
}

// A profile that lets through what it does not name (a deny-list) would let through system
// calls newer than this libseccomp, which it cannot name at all, unjudged: a new way to change
// a file (setxattrat, file_setattr) past a `deny: write` rule, or a new mount call. They fail
// with ENOSYS instead, as in Docker's default profile; programs fall back to the older calls.
void refuse_unnamed_syscalls(scmp_filter_ctx ctx) {
  for (int nr = highest_named_syscall() + 1; nr < kLastNativeSyscall; ++nr) {
    if (int rc = seccomp_rule_add_exact(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc != 0) {
      throw LaunchError("seccomp: ENOSYS for system call " + std::to_string(nr) +
                        " (unknown to libseccomp) refused: " + std::strerror(-rc));
    }
  }
}

}  // namespace

SeccompFilter::SeccompFilter(const policy::SeccompProfile& profile) {
  ctx_ = seccomp_init(action_for(profile.default_verdict));
  if (!ctx_) throw LaunchError("seccomp: seccomp_init failed");
  // Only the native ABI: anything else (x32, i386 through int 0x80) is reported and killed.
  if (int rc = seccomp_attr_set(ctx_, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_NOTIFY); rc != 0) {
    throw LaunchError(std::string("seccomp: set the foreign-ABI action: ") + std::strerror(-rc));
  }
  seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_TSYNC, 1);
  seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_OPTIMIZE, 2);  // binary tree of syscall numbers
  for (const policy::SeccompRule& rule : profile.rules) {
    int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture (checked by policy)
    std::vector<scmp_arg_cmp> cmps;
    for (const policy::SeccompCondition& c : rule.conditions)
      cmps.push_back(to_cmp(c));
    int rc = seccomp_rule_add_exact_array(ctx_, action_for(rule.verdict), nr,
                                          static_cast<unsigned>(cmps.size()), cmps.data());
    if (rc == -EACCES && rule.verdict == profile.default_verdict) continue;  // same as default
    if (rc != 0) {
      throw LaunchError("seccomp: rule for " + rule.syscall + " (" + rule.origin +
                        ") refused by libseccomp: " + std::strerror(-rc));
    }
  }
  if (profile.default_verdict == policy::SeccompVerdict::allow) refuse_unnamed_syscalls(ctx_);
}

SeccompFilter::~SeccompFilter() {
  if (ctx_) seccomp_release(ctx_);
}

UniqueFd SeccompFilter::load() {
  if (int rc = seccomp_load(ctx_); rc != 0) {
    throw LaunchError(std::string("seccomp: load failed: ") + std::strerror(-rc));
  }
  int fd = seccomp_notify_fd(ctx_);
  if (fd < 0) throw LaunchError("seccomp: no notification listener after load");
  return UniqueFd(fd);
}

bool seccomp_notify_supported(std::string& why) {
  if (seccomp_api_get() < 5) {
    why = "libseccomp API level " + std::to_string(seccomp_api_get()) + " (< 5: no notification)";
    return false;
  }
  struct seccomp_notif_sizes sizes {};
  if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) {
    why = std::string("kernel: SECCOMP_GET_NOTIF_SIZES: ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace launcher
