// Landlock: negotiates the ABI (1..7) and builds the enclosure's ruleset from the plan:
// read, write (with REFER, TRUNCATE, IOCTL_DEV as the ABI allows), EXECUTE only on tools and
// their interpreters, TCP connect ports (ABI 4+), scoping of abstract unix sockets and
// signals (ABI 6+).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"
#include "launcher/run/mount_view.h"
#include "policy/plan.h"

namespace launcher {

// The highest Landlock ABI the running kernel offers, 0 when Landlock is unavailable.
int landlock_abi();

class LandlockRuleset {
 public:
  // `view` maps manifest paths to their real paths in the view; grants that map to none
  // (absent on the host) are skipped. `executables` are extra files (real paths) that get
  // EXECUTE: ELF interpreters. Opens every path in the current root. Throws LaunchError.
  LandlockRuleset(const policy::LandlockPlan& plan, const ViewResult& view,
                  const std::vector<std::string>& executables, int abi);

  // Enforces the ruleset on the calling thread and its future children (needs no_new_privs).
  void restrict_self();

  // What this ruleset enforces, for the start event.
  nlohmann::json report() const { return report_; }

 private:
  UniqueFd fd_;
  nlohmann::json report_;
};

}  // namespace launcher
