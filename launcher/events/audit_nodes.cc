#include "launcher/events/audit_nodes.h"

#include <map>
#include <optional>
#include <string_view>

namespace launcher {
namespace {

struct HostIdentity {
  std::string hostname;
  std::string machine_id;
};

std::string text_of(const nlohmann::json& r, const char* key) {
  auto it = r.find(key);
  return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The host a record names: a head's host, a collector's started record, a start's received.
std::optional<HostIdentity> host_of(const nlohmann::json& r) {
  std::string type = text_of(r, "type");
  if (type == "head" && r.contains("host") && r["host"].is_object()) {
    return HostIdentity{text_of(r["host"], "hostname"), text_of(r["host"], "machine_id")};
  }
  if (type == "collector" && text_of(r, "event") == "started" && !text_of(r, "hostname").empty())
    return HostIdentity{text_of(r, "hostname"), ""};
  if (type == "start" && r.contains("received") && r["received"].is_object() &&
      !text_of(r["received"], "hostname").empty())
    return HostIdentity{text_of(r["received"], "hostname"), ""};
  return std::nullopt;
}

// The first host a file's lines name, preferring a head's (it has the machine id).
std::optional<HostIdentity> host_of_file(std::string_view content) {
  std::optional<HostIdentity> found;
  while (!content.empty()) {
    size_t nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content = nl == std::string_view::npos ? std::string_view() : content.substr(nl + 1);
    bool may_name_host = line.find("\"head\"") != std::string_view::npos ||
                         line.find("\"hostname\"") != std::string_view::npos;
    if (!may_name_host) continue;
    nlohmann::json r = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (!r.is_object()) continue;
    std::optional<HostIdentity> host = host_of(r);
    if (host && !host->machine_id.empty()) return host;
    if (host && !found) found = host;
  }
  return found;
}

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

std::vector<AuditNode> group_audit_files_by_node(const std::vector<AuditInput>& files) {
  std::vector<AuditNode> nodes;
  std::vector<std::string> hostnames;               // per node; "" until a file names it
  std::map<std::string, size_t> node_of_hostname;   // hostname -> index into nodes
  std::map<std::string, size_t> node_of_directory;  // the node of a directory's last file
  for (size_t i = 0; i < files.size(); ++i) {
    std::optional<HostIdentity> host = host_of_file(files[i].content);
    std::string hostname = host ? host->hostname : std::string();
    std::string directory = directory_of(files[i].name);
    auto by_host = node_of_hostname.find(hostname);
    auto by_directory = node_of_directory.find(directory);
    size_t index = nodes.size();
    if (!hostname.empty() && by_host != node_of_hostname.end()) {
      index = by_host->second;
    } else if (by_directory != node_of_directory.end() &&
               (hostname.empty() || hostnames[by_directory->second].empty())) {
      index = by_directory->second;  // the directory's node: a rotated file of the same log
    }
    if (index == nodes.size()) {
      nodes.push_back({hostname.empty() ? directory : hostname, {}});
      hostnames.emplace_back();
    }
    if (!hostname.empty() && hostnames[index].empty()) {
      hostnames[index] = hostname;
      nodes[index].name = hostname;
      node_of_hostname[hostname] = index;
    }
    if (host && !host->machine_id.empty() && nodes[index].name == hostname)
      nodes[index].name += " (machine-id " + host->machine_id.substr(0, 12) + "…)";
    nodes[index].files.push_back(i);
    node_of_directory[directory] = index;
  }
  return nodes;
}

AuditTimeSpan audit_time_span(const std::vector<AuditInput>& files) {
  AuditTimeSpan span;
  for (const AuditInput& f : files) {
    std::string_view rest = f.content;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      nlohmann::json r = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
      if (!r.is_object()) continue;
      std::string ts = text_of(r, "ts");
      if (ts.empty()) continue;
      if (span.first.empty()) span.first = ts;
      span.last = ts;
    }
  }
  return span;
}

}  // namespace launcher
