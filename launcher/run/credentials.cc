#include "launcher/run/credentials.h"

#include <grp.h>
#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "launcher/base/error.h"

namespace launcher {

void drop_privileges(uid_t uid, gid_t gid, bool in_user_namespace) {
  // Lock the securebits first (needs CAP_SETPCAP): root gains no capabilities on execve, the
  // kernel does not adjust capabilities on uid changes (they are cleared explicitly below),
  // ambient capabilities can never be raised, and none of this can be undone.
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                       SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                       SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) throw_errno("credentials: lock securebits");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    throw_errno("credentials: clear ambient capabilities");
  }
  for (int cap = 0; cap < 64; ++cap) {  // the kernel answers EINVAL past its last capability
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      throw_errno("credentials: drop capability " + std::to_string(cap) + " from the bounding set");
    }
  }
  if (!in_user_namespace && ::setgroups(0, nullptr) != 0) throw_errno("credentials: setgroups");
  if (::setresgid(gid, gid, gid) != 0) throw_errno("credentials: setresgid " + std::to_string(gid));
  if (::setresuid(uid, uid, uid) != 0) throw_errno("credentials: setresuid " + std::to_string(uid));
  cap_t none = cap_init();  // all sets empty
  if (!none) throw_errno("credentials: cap_init");
  int rc = cap_set_proc(none);
  cap_free(none);
  if (rc != 0) throw_errno("credentials: clear all capability sets");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("credentials: no_new_privs");
}

void keep_only_capabilities(const int* keep, int count) {
  auto kept = [&](int cap) {
    for (int i = 0; i < count; ++i) {
      if (keep[i] == cap) return true;
    }
    return false;
  };
  for (int cap = 0; cap < 64; ++cap) {
    if (!kept(cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      throw_errno("credentials: drop capability " + std::to_string(cap) + " from the bounding set");
    }
  }
  cap_t caps = cap_init();
  if (!caps) throw_errno("credentials: cap_init");
  std::vector<cap_value_t> values(keep, keep + count);
  if (count > 0) {
    cap_set_flag(caps, CAP_EFFECTIVE, count, values.data(), CAP_SET);
    cap_set_flag(caps, CAP_PERMITTED, count, values.data(), CAP_SET);
  }
  int rc = cap_set_proc(caps);
  cap_free(caps);
  if (rc != 0) throw_errno("credentials: reduce capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("credentials: no_new_privs");
}

}  // namespace launcher
