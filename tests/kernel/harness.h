// Test harness for kernel tests: runs the real `enclosure` binary on a manifest in a unique
// temporary directory and collects its exit code, output and events.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

namespace harness {

// A unique directory under /tmp, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes a file (creating parent directories) and returns its path.
  std::string write(const std::string& name, const std::string& content, int mode = 0644) const;

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<nlohmann::json> events;
  // Events of one type, in order.
  std::vector<nlohmann::json> of_type(const std::string& type) const;
  std::optional<nlohmann::json> first(const std::string& type) const;
  std::string describe() const;  // for failure messages
  // `deny` events of the syscalls section for one system call, in order.
  std::vector<nlohmann::json> denials(const std::string& syscall) const;
};

struct RunOptions {
  std::vector<std::string> extra_args;  // before "--" (e.g. --context, --grace)
  std::string stdin_data;
  int timeout_seconds = 60;
  std::map<std::string, std::string> env;  // added to the launcher's environment
  std::string netns;                       // run the launcher with `nsenter --net=PATH`
  // Run the launcher as this user ("UID:GID", no supplementary groups) through setpriv, and
  // with this enclosure binary (one the user can read; default: enclosure_binary()).
  std::string as_user;
  std::string binary;
};

// argv prefixed for `options`: setpriv for as_user, nsenter for netns.
std::vector<std::string> wrap_command(std::vector<std::string> argv, const RunOptions& options);

// Writes `manifest` into `dir`, runs `enclosure run -m ... --events FILE -- command...`.
RunResult run_enclosure(const TempDir& dir, const nlohmann::json& manifest,
                        const std::vector<std::string>& command, const RunOptions& options = {});

// Runs any command (argv[0] looked up in PATH); captures output and exit code.
RunResult run_command(const std::vector<std::string>& argv, const RunOptions& options = {});

// A manifest that can run /usr/bin tools: read /usr, /lib, /lib64, /bin, tmpfs /tmp, uid
// 65534, network none, the given tools (absolute paths), named by basename.
nlohmann::json base_manifest(const std::string& name, const std::vector<std::string>& tools);

// A python3 agent (/usr/bin/python3 must be a tool): runs `body` after a prelude that defines
//   R             a dict, printed as JSON on a last line "RESULT {...}" when `body` completes
//   t(name, f)    R[name] = f()'s value ("ok" when it returns None), or on OSError the errno's
//                 name ("ENOENT"); the name of any other exception's type
//   libc, sc(nr, *args)   ctypes' libc; a raw system call returning its value or -errno
//   errname(n)    the name of errno n
//   A             `args` (sys.argv[1:])
std::vector<std::string> python_agent(const std::string& body,
                                      const std::vector<std::string>& args = {});

// The "RESULT" object a python_agent printed, or null when there is none.
nlohmann::json python_result(const RunResult& r);

// The enclosure binary under test.
std::string enclosure_binary();

// Names of this run's leftovers: cgroups named enclosure-* (or exactly `name`, when given)
// under the v2 mount and v1 pids/memory hierarchies, and processes whose comm is
// enclosure-init/enclosure-wdog.
std::vector<std::string> leftover_cgroups(const std::string& name = "");
std::vector<int> leftover_processes();

// Host pids of processes whose comm is exactly `comm`.
std::vector<int> processes_named(const std::string& comm);

// leftover_processes() whose command line contains `needle`. enclosure-init and
// enclosure-wdog are forked from the launcher and keep its command line, which names the
// manifest and events files: a test's TempDir path picks out its own runs' processes, whatever
// other enclosures run on the host at the same time.
std::vector<int> leftover_processes_mentioning(const std::string& needle);

// The cgroup directories a run reported in its start event (v2, and v1 pids/memory) that
// still exist.
std::vector<std::string> remaining_cgroups_of(const RunResult& r);

// Number of lines of /proc/self/mountinfo (the host's mount table as the tests see it).
size_t mountinfo_lines();

// Polls `done` every 20 ms until it returns true or `timeout_ms` passed; returns its last value.
bool wait_until(const std::function<bool()>& done, int timeout_ms);

// An `enclosure run` started in the background, so that a test can act while it runs (read
// the agent's output, kill the launcher). Its events go to a file in `dir`.
class BackgroundRun {
 public:
  BackgroundRun(const TempDir& dir, const nlohmann::json& manifest,
                const std::vector<std::string>& command, const RunOptions& options = {});
  ~BackgroundRun();  // kills the launcher's process group if it is still running
  BackgroundRun(const BackgroundRun&) = delete;
  BackgroundRun& operator=(const BackgroundRun&) = delete;
  pid_t pid() const { return pid_; }
  // Reads the agent's standard output until it holds a complete line; returns that line
  // (without the newline), or nullopt on EOF or after `timeout_ms`.
  std::optional<std::string> read_line(int timeout_ms);
  // Sends `signal` to the launcher process alone.
  void kill(int signal);
  // Waits for the launcher to exit (killing it after `timeout_ms`) and returns its result,
  // with the rest of its output and the events written so far.
  RunResult wait(int timeout_ms = 60000);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string events_path_;
  std::string out_;
  std::string err_;
  size_t consumed_ = 0;
  bool reaped_ = false;
  RunResult result_;
};

// Runs `flood` (a python_agent body; its arguments are A[2:]) while the launcher is stopped
// (SIGSTOP, the launcher process alone): the agent prints READY, waits for a gate file, floods,
// then creates a file the test waits for (at most 30 s) before it continues the launcher. The
// records the kernel made meanwhile had no reader, so a small ring buffer overflows however fast
// the supervisor drains it. The manifest gets a write grant on a directory of `dir` for the two
// files.
RunResult run_flood_with_launcher_stopped(const TempDir& dir, nlohmann::json manifest,
                                          const std::string& flood,
                                          const std::vector<std::string>& args,
                                          const RunOptions& options = {});

// A socket on the host's loopback that records what reaches it (for the egress tests). It is
// read only when asked: the kernel queues every connection (completed handshake) and datagram
// that reached it, so collect() after a run sees all of them, with no timing involved.
class LoopbackListener {
 public:
  enum class Protocol { tcp, udp };
  // `address`: "127.0.0.1", "127.0.0.2", "::1"...; port 0: a free port the kernel picks. An
  // IPv6 listener is IPV6_V6ONLY. ok() is false when the address or port cannot be bound.
  LoopbackListener(Protocol protocol, const std::string& address, uint16_t port = 0);
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;
  bool ok() const { return fd_ >= 0 && port_ != 0; }
  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }
  // Accepts every pending connection and reads what they sent; receives every queued datagram.
  void collect();
  // What collect() has seen so far: accepted connections, datagrams, payload bytes.
  size_t connections() const { return connections_; }
  size_t datagrams() const { return datagrams_; }
  size_t bytes() const { return bytes_; }
  // The i-th connection collect() accepted (still open; the listener closes it on destruction).
  int accepted_fd(size_t i) const { return i < accepted_.size() ? accepted_[i] : -1; }
  std::string describe() const;  // "tcp 127.0.0.1:4242: 1 connections, 0 datagrams, 5 bytes"

 private:
  Protocol protocol_;
  std::string address_;
  uint16_t port_ = 0;
  int fd_ = -1;
  std::vector<int> accepted_;
  size_t connections_ = 0;
  size_t datagrams_ = 0;
  size_t bytes_ = 0;
};

// BPF objects (programs, maps, links) by id.
struct BpfObjects {
  std::map<uint32_t, std::string> programs;  // id -> name
  std::map<uint32_t, std::string> maps;
  std::map<uint32_t, std::string> links;  // id -> link type
  size_t size() const { return programs.size() + maps.size() + links.size(); }
};

// Every BPF object on the host (`bpftool prog|map|link show -j`).
BpfObjects bpf_objects_on_host();

// The BPF objects a process holds descriptors of (/proc/PID/fdinfo: prog_id, map_id, link_id);
// names are left empty.
BpfObjects bpf_objects_held_by(pid_t pid);

// The union of bpf_objects_held_by() over every process on the host.
BpfObjects bpf_objects_held_by_any_process();

}  // namespace harness
