#include "policy/observation_manifest.h"

#include "policy/path.h"
#include "policy/units.h"

namespace policy {
namespace {

bool within(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

nlohmann::json filesystem(const std::string& cwd) {
  nlohmann::json fs = {{"read", {"/"}}};
  bool cwd_in_tmp = within(cwd, "/tmp");
  if (!cwd_in_tmp) fs["tmpfs"] = {"/tmp"};
  // /proc and /dev are the enclosure's own: no grant can name them.
  bool provided = within(cwd, "/proc") || within(cwd, "/dev");
  if (cwd != "/" && !provided) fs["write"] = {cwd};
  return fs;
}

nlohmann::json any_destination() {
  nlohmann::json egress = nlohmann::json::array();
  for (const char* cidr : {"0.0.0.0/0", "::/0"}) {
    for (const char* protocol : {"tcp", "udp"}) {
      egress.push_back({{"cidr", cidr}, {"ports", {"1-65535"}}, {"protocol", protocol}});
    }
  }
  return {{"mode", "filtered"}, {"dns", true}, {"egress", egress}};
}

}  // namespace

ObservationManifest observation_manifest(const std::string& cwd, const std::string& command_path,
                                         const std::string& timeout) {
  if (std::string why = check_nameable_path(cwd); !why.empty()) {
    return {{}, "the working directory " + cwd + " cannot be observed: " + why};
  }
  if (std::string why = check_nameable_path(command_path); !why.empty()) {
    return {{}, "the command " + command_path + " cannot be named in a manifest: " + why};
  }
  if (Parsed<uint64_t> duration = parse_duration(timeout); !duration) {
    return {{}, "--timeout " + timeout + ": expected " + duration.error};
  }
  nlohmann::json m = {
      {"apiVersion", "enclosure/v1"},
      {"metadata", {{"name", "learn"}, {"reason", "observation run of enclosure learn"}}},
      {"filesystem", filesystem(cwd)},
      {"tools", {{{"name", "command"}, {"path", command_path}}}},
      {"process", {{"cwd", cwd}, {"env", {{"pass", {"PATH", "LANG", "TERM", "HOME"}}}}}},
      {"network", any_destination()},
      {"syscalls", {{"profile", "default"}}},
      {"budgets", {{"wall_clock", timeout}}},
      {"audit", {{"files", true}, {"syscalls", true}}}};
  return {std::move(m), ""};
}

}  // namespace policy
