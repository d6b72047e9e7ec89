// seccomp via libseccomp: the plan's profile for the native architecture only. Denied calls
// and calls of a foreign ABI (x32, i386 via int 0x80) become user notifications, so that the
// supervisor records each one (and answers EPERM, or kills the process) before anything runs.
#pragma once

#include <seccomp.h>

#include <string>

#include "launcher/base/fd.h"
#include "policy/plan.h"

namespace launcher {

class SeccompFilter {
 public:
  // Builds the filter; throws LaunchError naming the rule libseccomp refused.
  explicit SeccompFilter(const policy::SeccompProfile& profile);
  ~SeccompFilter();
  SeccompFilter(const SeccompFilter&) = delete;
  SeccompFilter& operator=(const SeccompFilter&) = delete;

  // Loads the filter into the calling process (all threads) and returns the notification
  // listener. Also sets no_new_privs. Must be the last step before execve.
  UniqueFd load();

 private:
  scmp_filter_ctx ctx_ = nullptr;
};

// Whether the kernel and libseccomp support user notification (needed to log denials).
bool seccomp_notify_supported(std::string& why);

}  // namespace launcher
