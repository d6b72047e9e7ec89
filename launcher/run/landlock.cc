#include "launcher/run/landlock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "launcher/base/error.h"

namespace launcher {
namespace {

// UAPI values (linux/landlock.h); Debian 12's headers predate ABI 4-7, so they are spelled out.
constexpr uint64_t kFsExecute = 1ULL << 0;
constexpr uint64_t kFsWriteFile = 1ULL << 1;
constexpr uint64_t kFsReadFile = 1ULL << 2;
constexpr uint64_t kFsReadDir = 1ULL << 3;
constexpr uint64_t kFsRemoveDir = 1ULL << 4;
constexpr uint64_t kFsRemoveFile = 1ULL << 5;
constexpr uint64_t kFsMakeChar = 1ULL << 6;
constexpr uint64_t kFsMakeDir = 1ULL << 7;
constexpr uint64_t kFsMakeReg = 1ULL << 8;
constexpr uint64_t kFsMakeSock = 1ULL << 9;
constexpr uint64_t kFsMakeFifo = 1ULL << 10;
constexpr uint64_t kFsMakeBlock = 1ULL << 11;
constexpr uint64_t kFsMakeSym = 1ULL << 12;
constexpr uint64_t kFsRefer = 1ULL << 13;           // ABI 2
constexpr uint64_t kFsTruncate = 1ULL << 14;        // ABI 3
constexpr uint64_t kFsIoctlDev = 1ULL << 15;        // ABI 5
constexpr uint64_t kNetConnectTcp = 1ULL << 1;      // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ULL << 1;        // ABI 6
constexpr unsigned kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;
constexpr int kRuleNetPort = 2;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

struct NetPortAttr {
  uint64_t allowed_access;
  uint64_t port;
};

constexpr uint64_t kFileRights =
    kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;
constexpr size_t kMaxTcpPortRules = 4096;

uint64_t handled_fs(int abi) {
  uint64_t rights = kFsExecute | kFsWriteFile | kFsReadFile | kFsReadDir | kFsRemoveDir |
                    kFsRemoveFile | kFsMakeChar | kFsMakeDir | kFsMakeReg | kFsMakeSock |
                    kFsMakeFifo | kFsMakeBlock | kFsMakeSym;
  if (abi >= 2) rights |= kFsRefer;
  if (abi >= 3) rights |= kFsTruncate;
  if (abi >= 5) rights |= kFsIoctlDev;
  return rights;
}

uint64_t rights_for(uint32_t access, int abi) {
  uint64_t r = 0;
  if (access & policy::kLandlockRead) r |= kFsReadFile | kFsReadDir;
  if (access & policy::kLandlockWrite) {
    r |= kFsWriteFile | kFsRemoveDir | kFsRemoveFile | kFsMakeDir | kFsMakeReg | kFsMakeSock |
         kFsMakeFifo | kFsMakeSym | kFsRefer | kFsTruncate;
  }
  if (access & policy::kLandlockExecute) r |= kFsExecute;
  if (access & policy::kLandlockDevice) r |= kFsIoctlDev;
  return r & handled_fs(abi);
}

}  // namespace

int landlock_abi() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

LandlockRuleset::LandlockRuleset(const policy::LandlockPlan& plan, const ViewResult& view,
                                 const std::vector<std::string>& executables, int abi) {
  if (abi < 1) throw LaunchError("landlock: not available on this kernel");
  RulesetAttr attr{};
  attr.handled_access_fs = handled_fs(abi);
  size_t attr_size = sizeof(uint64_t);
  bool tcp = plan.restrict_tcp_connect && abi >= 4;
  size_t tcp_rules = 0;
  for (const policy::PortRange& r : plan.tcp_connect_ports)
    tcp_rules += r.last - r.first + 1u;
  if (tcp && tcp_rules > kMaxTcpPortRules) tcp = false;
  if (abi >= 4) {
    attr_size = 2 * sizeof(uint64_t);
    if (tcp) attr.handled_access_net = kNetConnectTcp;
  }
  bool scoped = abi >= 6 && (plan.scope_abstract_unix || plan.scope_signals);
  if (abi >= 6) {
    attr_size = sizeof(RulesetAttr);
    if (plan.scope_abstract_unix) attr.scoped |= kScopeAbstractUnix;
    if (plan.scope_signals) attr.scoped |= kScopeSignal;
  }
  fd_.reset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0)));
  if (!fd_) throw_errno("landlock: create ruleset (abi " + std::to_string(abi) + ")");

  nlohmann::json grants = nlohmann::json::array();
  auto add_path = [&](const std::string& path, uint64_t rights, const std::string& origin,
                      bool directory) {
    UniqueFd target(::open(path.c_str(), O_PATH | O_CLOEXEC));
    // A granted path the host does not have is absent from the view too (the mount view
    // reports it in `absent`): there is nothing to grant, and skipping a grant never widens.
    if (!target && errno == ENOENT) return;
    if (!target) throw_errno("landlock: open " + path + " for " + origin);
    struct stat st {};
    if (::fstat(target.get(), &st) != 0) throw_errno("landlock: stat " + path);
    // A tree tool: execute for the whole hierarchy beneath the directory, so it must be one.
    if (directory && !S_ISDIR(st.st_mode)) {
      throw LaunchError("landlock: " + origin + ": the tree tool's path " + path +
                        " is not a directory");
    }
    if (!S_ISDIR(st.st_mode)) rights &= kFileRights;
    if (rights == 0) return;
    PathBeneathAttr rule{rights, target.get()};
    if (::syscall(SYS_landlock_add_rule, fd_.get(), kRulePathBeneath, &rule, 0) != 0) {
      throw_errno("landlock: add rule for " + path + " (" + origin + ")");
    }
    grants.push_back({{"path", path}, {"rights", rights}, {"origin", origin}});
  };
  for (const policy::LandlockGrant& g : plan.grants) {
    std::string path = g.path;
    if (g.origin.rfind("built-in", 0) != 0) {
      path = view.view_path(g.path);
      if (path.empty()) continue;  // absent on this host
    }
    add_path(path, rights_for(g.access, abi), g.origin, g.directory);
  }
  for (const std::string& exe : executables) {
    add_path(exe, rights_for(policy::kLandlockRead | policy::kLandlockExecute, abi),
             "ELF interpreter of a tool", false);
  }
  if (tcp) {
    for (const policy::PortRange& r : plan.tcp_connect_ports) {
      for (uint32_t port = r.first; port <= r.last; ++port) {
        NetPortAttr rule{kNetConnectTcp, port};
        if (::syscall(SYS_landlock_add_rule, fd_.get(), kRuleNetPort, &rule, 0) != 0) {
          throw_errno("landlock: add tcp connect rule for port " + std::to_string(port));
        }
      }
    }
  }
  report_ = {{"abi", abi},
             {"handled_access_fs", attr.handled_access_fs},
             {"rules", grants.size()},
             {"tcp_connect",
              tcp ? "restricted to the egress ports"
                  : (plan.restrict_tcp_connect ? (abi < 4 ? "not available (abi < 4)"
                                                          : "not applied (port ranges too wide)")
                                               : "not restricted")},
             {"scoped", scoped ? "abstract unix sockets and signals" : "no (abi < 6)"}};
}

void LandlockRuleset::restrict_self() {
  if (::syscall(SYS_landlock_restrict_self, fd_.get(), 0) != 0)
    throw_errno("landlock: restrict_self");
  fd_.reset();
}

}  // namespace launcher
