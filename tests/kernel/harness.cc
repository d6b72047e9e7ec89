#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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
  o << "exit " << exit_code << "\n--- stdout ---\n" << out << "\n--- stderr ---\n" << err << "\n--- events ---\n";
  for (const auto& e : events) {
    nlohmann::json brief = e;
    brief.erase("host");
    brief.erase("manifest_document");
    brief.erase("manifest");
    o << brief.dump() << "\n";
  }
  return o.str();
}

std::string enclosure_binary() { return ENCLOSURE_BINARY; }

RunResult run_command(const std::vector<std::string>& argv_in, const RunOptions& options) {
  std::vector<std::string> argv = argv_in;
  if (!options.netns.empty()) {
    argv.insert(argv.begin(), {"nsenter", "--net=" + options.netns, "--"});
  }
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
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
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
  std::vector<std::string> argv = {enclosure_binary(), "run", "-m", manifest_path, "--events", events_path};
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

std::vector<std::string> leftover_cgroups() {
  std::vector<std::string> out;
  for (const char* root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory",
                           "/sys/fs/cgroup"}) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && it->path().filename().string().rfind("enclosure-", 0) == 0) {
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

}  // namespace harness
