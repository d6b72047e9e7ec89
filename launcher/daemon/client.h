// The unprivileged launcher's side of `enclosure daemon`: asks it for the run's cgroup and eBPF
// configuration, hands it the enclosure's first process, and is the supervisor's eBPF layer
// (bpf::KernelLayer) for the run: counters, rule bits, admissions, the per-file open counts of
// audit.files and the records the daemon forwards. When the daemon restarts, the client reconnects
// and re-adopts the run with its token; meanwhile the pinned programs go on enforcing, counters
// keep their last value and the composition rules count as fired (write and exec gates deny: fail
// closed).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/kernel_layer.h"
#include "launcher/base/fd.h"
#include "launcher/daemon/protocol.h"
#include "launcher/run/cgroup.h"
#include "launcher/run/host_features.h"

namespace launcher {

class DaemonClient : public bpf::KernelLayer {
 public:
  // Connects and greets the daemon; throws LaunchError naming the socket when it cannot.
  explicit DaemonClient(std::string socket_path);

  const std::string& socket_path() const { return path_; }
  // The daemon's answer to hello: its programs and where cgroup limits go.
  const HelloReply& features() const { return features_; }

  // Creates the run (cgroup, maps). Throws LaunchError with the daemon's reason.
  void create(const CreateRequest& request);
  uint64_t cgroup_id() const { return cgroup_id_; }
  const CgroupDirectories& cgroup() const { return cgroup_; }
  // The run's cgroup directories, open, as the daemon sent them (once; empty after).
  CgroupDirectoryFds take_cgroup_fds() { return std::move(cgroup_fds_); }
  const nlohmann::json& cgroup_report() const { return cgroup_report_; }
  // Moves the process behind `pidfd` (a child of this process) into the run's cgroups.
  void enter(int pidfd);
  // cgroup.kill of the run, by the daemon; false when it could not be asked.
  bool kill_all();
  // Kills what is left and removes the run; the daemon forgets it.
  void release();

  int ring_fd() const override { return poll_.get(); }
  void drain(const std::function<void(const void* data, size_t size)>& sink) override;
  void flush() override;
  bpf::EnclosureCounters counters(uint64_t cgroup_id) const override;
  // Every entry of the run's file_opens map, in pages of kFileOpensPerPage. Throws LaunchError
  // naming the daemon when it cannot be asked, refuses, or a page is malformed (not whole
  // entries, not where the previous one ended, or of another total).
  std::vector<bpf::FileOpenCount> file_opens(uint64_t cgroup_id) const override;
  uint64_t rules_fired(uint64_t cgroup_id) const override;
  void set_reported_cost(uint64_t cgroup_id, uint64_t micro_usd) override;
  void admit(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol,
             const std::vector<policy::PortRange>& ports, size_t rule_index) override;
  void revoke(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol) override;
  nlohmann::json report() const override { return bpf_report_; }

 private:
  CgroupDirectoryFds cgroup_fds_of(const RunReply& r, std::vector<UniqueFd>& fds) const;
  FileOpensReply file_opens_page(uint64_t offset) const;

  std::string path_;
  mutable UniqueFd control_;
  mutable UniqueFd events_;
  UniqueFd poll_;  // an epoll set holding the current events connection: stable for the caller
  HelloReply features_;
  std::string token_;
  uint64_t cgroup_id_ = 0;
  CgroupDirectories cgroup_;
  CgroupDirectoryFds cgroup_fds_;
  nlohmann::json cgroup_report_;
  nlohmann::json bpf_report_;
  mutable std::string events_buffer_;
  mutable bpf::EnclosureCounters last_counters_;
  mutable uint64_t last_attempt_ns_ = 0;  // monotonic_ns() of the last reconnect attempt
  // Admissions, revocations and costs sent while the daemon was unreachable, replayed on
  // reconnect.
  mutable std::vector<DaemonRequest> pending_admissions_;

  // A call on the control connection; nullopt (and the connection dropped) when the daemon is
  // unreachable or its reply is malformed. Refusals throw.
  template <class Reply>
  std::optional<Reply> call(const DaemonRequest& request) const;
  // A request whose reply is empty, kept for the next reconnect when the daemon is unreachable.
  void send_or_keep(DaemonRequest request);
  bool connected() const { return static_cast<bool>(control_); }
  // Reconnects and re-adopts the run (at most every 100 ms); true when connected.
  bool reconnect() const;
  void open_events() const;
  void read_events() const;
};

// The socket a launcher (or doctor) uses: `explicit_path`, or the default socket when this
// process is not root and that socket exists; "" for none.
std::string daemon_socket_for(const std::string& explicit_path);

// What `host` gains from `daemon`: the eBPF layer and the cgroup controllers it provides.
void apply_daemon_features(HostFeatures& host, const DaemonClient& daemon);

}  // namespace launcher
