// Test harness for kernel tests: runs the real `enclosure` binary on a manifest in a unique
// temporary directory and collects its exit code, output and events.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

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
};

struct RunOptions {
  std::vector<std::string> extra_args;  // before "--" (e.g. --context, --grace)
  std::string stdin_data;
  int timeout_seconds = 60;
  std::map<std::string, std::string> env;  // added to the launcher's environment
  std::string netns;                        // run the launcher with `nsenter --net=PATH`
};

// Writes `manifest` into `dir`, runs `enclosure run -m ... --events FILE -- command...`.
RunResult run_enclosure(const TempDir& dir, const nlohmann::json& manifest,
                        const std::vector<std::string>& command, const RunOptions& options = {});

// Runs any command (argv[0] looked up in PATH); captures output and exit code.
RunResult run_command(const std::vector<std::string>& argv, const RunOptions& options = {});

// A manifest that can run /usr/bin tools: read /usr, /lib, /lib64, /bin, tmpfs /tmp, uid
// 65534, network none, the given tools (absolute paths), named by basename.
nlohmann::json base_manifest(const std::string& name, const std::vector<std::string>& tools);

// The enclosure binary under test.
std::string enclosure_binary();

// Names of this run's leftovers: cgroups named enclosure-* under the v2 mount and v1
// pids/memory hierarchies, and processes whose comm is enclosure-init/enclosure-wdog.
std::vector<std::string> leftover_cgroups();
std::vector<int> leftover_processes();

}  // namespace harness
