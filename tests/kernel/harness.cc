#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace harness {

TempDir::TempDir() {
  char tmpl[] = "/tmp/enclosure-test-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  if (!p) throw std::runtime_error("mkdtemp failed");
  path_ = p;
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content, int mode) const {
  std::string p = file(name);
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
  }
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
  return p;
}

std::vector<nlohmann::json> RunResult::of_type(const std::string& type) const {
  std::vector<nlohmann::json> out;
  for (const auto& e : events) {
    if (e.value("type", "") == type) out.push_back(e);
  }
  return out;
}

std::optional<nlohmann::json> RunResult::first(const std::string& type) const {
  for (const auto& e : events) {
    if (e.value("type", "") == type) return e;
  }
  return std::nullopt;
}

std::string RunResult::describe() const {
  std::ostringstream o;
  o << "exit " << exit_code << "\n--- stdout ---\n"
    << out << "\n--- stderr ---\n"
    << err << "\n--- events ---\n";
  for (const auto& e : events) {
    nlohmann::json brief = e;
    brief.erase("host");
    brief.erase("manifest_document");
    brief.erase("manifest");
    o << brief.dump() << "\n";
  }
  return o.str();
}

std::vector<nlohmann::json> RunResult::denials(const std::string& syscall) const {
  std::vector<nlohmann::json> out;
  for (const auto& e : events) {
    if (e.value("type", "") == "deny" && e.value("section", "") == "syscalls" &&
        e.value("syscall", "") == syscall) {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<std::string> python_agent(const std::string& body,
                                      const std::vector<std::string>& args) {
  static const char* const kPrelude = R"(import ctypes, errno, json, os, sys
R = {}
A = sys.argv[1:]
def errname(n):
    return errno.errorcode.get(n, "E%d" % n)
def t(name, f):
    try:
        v = f()
        R[name] = "ok" if v is None else v
    except OSError as e:
        R[name] = errname(e.errno) if e.errno else type(e).__name__
    except Exception as e:
        R[name] = type(e).__name__
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) if isinstance(a, int) else a for a in args])
    return -ctypes.get_errno() if r == -1 else r
)";
  std::string code = kPrelude;
  code += body;
  code += "\nprint(\"RESULT \" + json.dumps(R), flush=True)\n";
  std::vector<std::string> command = {"/usr/bin/python3", "-c", code};
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

nlohmann::json python_result(const RunResult& r) {
  size_t at = r.out.rfind("RESULT ");
  if (at == std::string::npos || (at > 0 && r.out[at - 1] != '\n')) return nullptr;
  size_t end = r.out.find('\n', at);
  try {
    return nlohmann::json::parse(
        r.out.substr(at + 7, end == std::string::npos ? end : end - at - 7));
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string enclosure_binary() {
  return ENCLOSURE_BINARY;
}

std::vector<std::string> wrap_command(std::vector<std::string> argv, const RunOptions& options) {
  if (!options.as_user.empty()) {
    size_t colon = options.as_user.find(':');
    argv.insert(argv.begin(),
                {"setpriv", "--reuid=" + options.as_user.substr(0, colon),
                 "--regid=" + options.as_user.substr(colon + 1), "--clear-groups", "--"});
  }
  if (!options.netns.empty()) {
    argv.insert(argv.begin(), {"nsenter", "--net=" + options.netns, "--"});
  }
  return argv;
}

RunResult run_command(const std::vector<std::string>& argv_in, const RunOptions& options) {
  std::vector<std::string> argv = wrap_command(argv_in, options);
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC) || ::pipe2(in_pipe, O_CLOEXEC)) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    env_strings.emplace_back(*e);
  for (const auto& [k, v] : options.env)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(in_pipe[0]);
  RunResult r;
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::close(in_pipe[1]);
    r.err = std::string("posix_spawnp: ") + std::strerror(rc);
    return r;
  }
  if (!options.stdin_data.empty()) {
    (void)!::write(in_pipe[1], options.stdin_data.data(), options.stdin_data.size());
  }
  ::close(in_pipe[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_seconds);
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_count = 2;
  while (open_count > 0) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      ::kill(-pid, SIGKILL);
      r.err += "\n[harness: timed out after " + std::to_string(options.timeout_seconds) + "s]";
      break;
    }
    int n = ::poll(fds, 2, left);
    if (n <= 0) continue;
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP))) continue;
      char buf[8192];
      ssize_t got = ::read(f.fd, buf, sizeof buf);
      if (got <= 0) {
        ::close(f.fd);
        f.fd = -1;
        --open_count;
        continue;
      }
      (f.fd == out_pipe[0] ? r.out : r.err).append(buf, static_cast<size_t>(got));
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

RunResult run_enclosure(const TempDir& dir, const nlohmann::json& manifest,
                        const std::vector<std::string>& command, const RunOptions& options) {
  static int counter = 0;
  std::string tag = std::to_string(++counter);
  std::string manifest_path = dir.write("manifest-" + tag + ".json", manifest.dump(2));
  std::string events_path = dir.file("events-" + tag + ".jsonl");
  std::vector<std::string> argv = {options.binary.empty() ? enclosure_binary() : options.binary,
                                   "run",
                                   "-m",
                                   manifest_path,
                                   "--events",
                                   events_path};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  RunResult r = run_command(argv, options);
  std::ifstream in(events_path);
  std::string line;
  while (std::getline(in, line)) {
    try {
      r.events.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& e) {
      r.err += "\n[harness: unparsable event line: " + line + "]";
    }
  }
  return r;
}

nlohmann::json base_manifest(const std::string& name, const std::vector<std::string>& tools) {
  nlohmann::json t = nlohmann::json::array();
  for (const std::string& path : tools) {
    t.push_back({{"name", std::filesystem::path(path).filename().string()}, {"path", path}});
  }
  return {{"apiVersion", "enclosure/v1"},
          {"metadata", {{"name", name}}},
          {"filesystem", {{"read", {"/usr", "/lib", "/lib64", "/bin"}}, {"tmpfs", {"/tmp"}}}},
          {"process", {{"user", {{"uid", 65534}, {"gid", 65534}}}, {"env", {{"pass", {"PATH"}}}}}},
          {"tools", t},
          {"network", {{"mode", "none"}}},
          {"budgets", {{"wall_clock", "60s"}}}};
}

std::vector<std::string> leftover_cgroups(const std::string& name) {
  std::vector<std::string> out;
  for (const char* root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory",
                           "/sys/fs/cgroup"}) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::string found = it->path().filename().string();
      bool named = name.empty() ? found.rfind("enclosure-", 0) == 0 : found == name;
      if (it->is_directory(ec) && named) {
        out.push_back(it->path().string());
        it.disable_recursion_pending();
      }
      if (it.depth() > 4) it.disable_recursion_pending();
    }
  }
  return out;
}

std::vector<int> leftover_processes() {
  std::vector<int> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream comm("/proc/" + std::string(e->d_name) + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name == "enclosure-init" || name == "enclosure-wdog") out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

std::vector<int> processes_named(const std::string& comm) {
  std::vector<int> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/comm");
    std::string name;
    std::getline(in, name);
    if (name == comm) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

std::vector<int> leftover_processes_mentioning(const std::string& needle) {
  std::vector<int> out;
  for (int pid : leftover_processes()) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cmdline = ss.str();
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos) out.push_back(pid);
  }
  return out;
}

std::vector<std::string> remaining_cgroups_of(const RunResult& r) {
  std::vector<std::string> out;
  auto start = r.first("start");
  if (!start || !start->contains("cgroup")) return out;
  const nlohmann::json& cg = (*start)["cgroup"];
  std::vector<std::string> dirs;
  if (cg.contains("v2") && cg["v2"].is_string()) dirs.push_back(cg["v2"]);
  for (const char* c : {"pids", "memory"}) {
    if (cg.contains(c) && cg[c].contains("path")) dirs.push_back(cg[c]["path"]);
  }
  for (const std::string& d : dirs) {
    std::error_code ec;
    if (std::filesystem::exists(d, ec)) out.push_back(d);
  }
  return out;
}

size_t mountinfo_lines() {
  std::ifstream in("/proc/self/mountinfo");
  size_t n = 0;
  std::string line;
  while (std::getline(in, line))
    ++n;
  return n;
}

bool wait_until(const std::function<bool()>& done, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace {

int milliseconds_until(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Reads what is available from `fd` into `sink`; closes it and sets it to -1 on EOF.
void read_available(int& fd, std::string& sink) {
  char buf[8192];
  ssize_t got = ::read(fd, buf, sizeof buf);
  if (got > 0) {
    sink.append(buf, static_cast<size_t>(got));
    return;
  }
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
  ::close(fd);
  fd = -1;
}

}  // namespace

BackgroundRun::BackgroundRun(const TempDir& dir, const nlohmann::json& manifest,
                             const std::vector<std::string>& command, const RunOptions& options) {
  static int counter = 0;
  std::string tag = "bg-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  std::string manifest_path = dir.write("manifest-" + tag + ".json", manifest.dump(2));
  events_path_ = dir.file("events-" + tag + ".jsonl");
  std::vector<std::string> argv = {options.binary.empty() ? enclosure_binary() : options.binary,
                                   "run",
                                   "-m",
                                   manifest_path,
                                   "--events",
                                   events_path_};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  argv = wrap_command(argv, options);
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC)) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    env_strings.emplace_back(*e);
  for (const auto& [k, v] : options.env)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int rc = ::posix_spawnp(&pid_, cargv[0], &fa, &attr, cargv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  if (rc != 0) {
    pid_ = -1;
    reaped_ = true;
    throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(rc));
  }
}

BackgroundRun::~BackgroundRun() {
  if (!reaped_ && pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

std::optional<std::string> BackgroundRun::read_line(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t nl = out_.find('\n', consumed_);
    if (nl != std::string::npos) {
      std::string line = out_.substr(consumed_, nl - consumed_);
      consumed_ = nl + 1;
      return line;
    }
    if (out_fd_ < 0) return std::nullopt;
    int left = milliseconds_until(deadline);
    if (left == 0) return std::nullopt;
    struct pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (::poll(fds, err_fd_ >= 0 ? 2 : 1, left) <= 0) continue;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) read_available(out_fd_, out_);
    if (err_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      read_available(err_fd_, err_);
    }
  }
}

RunResult run_flood_with_launcher_stopped(const TempDir& dir, nlohmann::json manifest,
                                          const std::string& flood,
                                          const std::vector<std::string>& args,
                                          const RunOptions& options) {
  std::string control = dir.file("flood-control");
  std::filesystem::create_directories(control);
  std::filesystem::permissions(control, std::filesystem::perms::all);  // the agent's uid writes
  if (!manifest["filesystem"].contains("write"))
    manifest["filesystem"]["write"] = nlohmann::json::array();
  manifest["filesystem"]["write"].push_back(control);
  std::vector<std::string> agent_args = {control + "/go", control + "/done"};
  agent_args.insert(agent_args.end(), args.begin(), args.end());
  // The control files are the first two arguments; the flood's own are A[0:] for its body.
  std::string body = std::string("FLOOD_CONTROL = sys.argv[1:3]\nA = sys.argv[3:]\n") +
                     R"(import time
print("READY", flush=True)
for _ in range(1500):
    if os.path.exists(FLOOD_CONTROL[0]):
        break
    time.sleep(0.02)
)" + flood + "\nopen(FLOOD_CONTROL[1], \"w\").close()\n";
  BackgroundRun run(dir, manifest, python_agent(body, agent_args), options);
  if (run.read_line(30000).value_or("") != "READY") return run.wait();
  run.kill(SIGSTOP);
  { std::ofstream(control + "/go") << "go"; }
  wait_until([&] { return std::filesystem::exists(control + "/done"); }, 30000);
  run.kill(SIGCONT);
  return run.wait();
}

void BackgroundRun::kill(int signal) {
  if (!reaped_ && pid_ > 0) ::kill(pid_, signal);
}

RunResult BackgroundRun::wait(int timeout_ms) {
  if (reaped_) return result_;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  while (out_fd_ >= 0 || err_fd_ >= 0) {
    int left = milliseconds_until(deadline);
    if (left == 0) {
      timed_out = true;
      ::kill(-pid_, SIGKILL);
      break;
    }
    struct pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (::poll(fds, 2, left) <= 0) continue;
    if (out_fd_ >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      read_available(out_fd_, out_);
    }
    if (err_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      read_available(err_fd_, err_);
    }
  }
  int status = 0;
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
  result_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result_.out = out_;
  result_.err = err_;
  if (timed_out) result_.err += "\n[harness: timed out; launcher killed]";
  std::ifstream in(events_path_);
  std::string line;
  while (std::getline(in, line)) {
    try {
      result_.events.push_back(nlohmann::json::parse(line));
    } catch (const std::exception&) {
      result_.err += "\n[harness: unparsable event line: " + line + "]";
    }
  }
  return result_;
}

LoopbackListener::LoopbackListener(Protocol protocol, const std::string& address, uint16_t port)
    : protocol_(protocol), address_(address) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof *a4;
  } else if (::inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) == 1) {
    family = AF_INET6;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof *a6;
  } else {
    return;
  }
  int type = protocol == Protocol::tcp ? SOCK_STREAM : SOCK_DGRAM;
  fd_ = ::socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return;
  int one = 1;
  if (family == AF_INET6) ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      (protocol == Protocol::tcp && ::listen(fd_, 128) != 0) ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  port_ = ntohs(family == AF_INET ? a4->sin_port : a6->sin6_port);
}

LoopbackListener::~LoopbackListener() {
  for (int fd : accepted_)
    ::close(fd);
  if (fd_ >= 0) ::close(fd_);
}

void LoopbackListener::collect() {
  if (fd_ < 0) return;
  char buf[65536];
  if (protocol_ == Protocol::udp) {
    while (true) {
      ssize_t got = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (got < 0) break;
      ++datagrams_;
      bytes_ += static_cast<size_t>(got);
    }
    return;
  }
  while (true) {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) break;
    ++connections_;
    accepted_.push_back(c);
  }
  for (int c : accepted_) {
    while (true) {
      ssize_t got = ::recv(c, buf, sizeof buf, MSG_DONTWAIT);
      if (got <= 0) break;
      bytes_ += static_cast<size_t>(got);
    }
  }
}

std::string LoopbackListener::describe() const {
  std::string where = address_.find(':') != std::string::npos
                          ? "[" + address_ + "]:" + std::to_string(port_)
                          : address_ + ":" + std::to_string(port_);
  return std::string(protocol_ == Protocol::tcp ? "tcp " : "udp ") + where + ": " +
         std::to_string(connections_) + " connections, " + std::to_string(datagrams_) +
         " datagrams, " + std::to_string(bytes_) + " bytes";
}

BpfObjects bpf_objects_on_host() {
  BpfObjects out;
  for (const char* kind : {"prog", "map", "link"}) {
    std::string bpftool = "bpftool";
    for (const char* p : {"/usr/sbin/bpftool", "/usr/bin/bpftool", "/sbin/bpftool"}) {
      if (::access(p, X_OK) == 0) {
        bpftool = p;
        break;
      }
    }
    RunResult r = run_command({bpftool, kind, "show", "-j"});
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(r.out);
    } catch (const std::exception&) {
      throw std::runtime_error(std::string("bpftool ") + kind + " show -j: " + r.err);
    }
    for (const auto& o : list) {
      auto id = o.value("id", 0u);
      if (std::string(kind) == "prog") out.programs[id] = o.value("name", "");
      if (std::string(kind) == "map") out.maps[id] = o.value("name", "");
      if (std::string(kind) == "link") out.links[id] = o.value("type", "");
    }
  }
  return out;
}

BpfObjects bpf_objects_held_by(pid_t pid) {
  BpfObjects out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::ifstream in(it->path());
    std::string line;
    std::map<std::string, uint32_t> ids;
    while (std::getline(in, line)) {
      for (const char* key : {"prog_id:", "map_id:", "link_id:"}) {
        if (line.rfind(key, 0) == 0) {
          ids[key] =
              static_cast<uint32_t>(std::strtoul(line.c_str() + std::strlen(key), nullptr, 10));
        }
      }
    }
    // A link's fdinfo names its program too; the link is what the descriptor is.
    if (ids.count("link_id:")) {
      out.links[ids["link_id:"]] = "";
    } else if (ids.count("prog_id:")) {
      out.programs[ids["prog_id:"]] = "";
    } else if (ids.count("map_id:")) {
      out.maps[ids["map_id:"]] = "";
    }
  }
  return out;
}

BpfObjects bpf_objects_held_by_any_process() {
  BpfObjects out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    BpfObjects held = bpf_objects_held_by(pid);
    out.programs.insert(held.programs.begin(), held.programs.end());
    out.maps.insert(held.maps.begin(), held.maps.end());
    out.links.insert(held.links.begin(), held.links.end());
  }
  ::closedir(d);
  return out;
}

}  // namespace harness
