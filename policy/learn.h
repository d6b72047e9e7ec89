// `enclosure learn`: from what an observed run did, a least-privilege manifest and the behaviour
// profile for `baseline`. Pure: the launcher runs the command and collects the observation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/baseline.h"
#include "policy/manifest.h"

namespace policy {

struct ObservedOpen {
  std::string path;  // absolute (relative paths resolved against the cwd by the caller)
  bool write = false;
  bool directory = false;
  bool ok = true;
};

struct ObservedConnect {
  std::string address;  // "1.2.3.4" or "::1"
  uint16_t port = 0;
  Protocol protocol = Protocol::tcp;
  std::string name;  // the DNS name the address was answered for, if any
};

struct Observation {
  std::vector<std::string> command;       // as given to learn
  std::string command_path;               // the executable of the first exec
  std::map<std::string, uint64_t> execs;  // executable path -> times executed
  std::vector<ObservedOpen> opens;
  std::vector<ObservedConnect> connects;
  std::set<std::string> dns_names;  // names asked and answered
  std::set<std::string> syscalls;   // every syscall seen
  uint64_t syscall_count = 0;
  uint64_t duration_ns = 0;
  uint64_t cpu_ns = 0;
  uint64_t peak_processes = 0;
  uint64_t peak_memory_bytes = 0;
  std::string cwd = "/";
  std::set<std::string> created_dirs;  // directories the run itself created (granted via a parent)
  BaselineProfile profile;             // per-window peaks and syscalls seen
};

struct LearnOptions {
  double headroom = 2.0;
  std::string name = "learned";
  std::string date;  // for metadata.reason
};

struct LearnResult {
  nlohmann::json manifest;           // passes `enclosure check`
  nlohmann::json profile;            // the behaviour profile
  std::vector<std::string> flagged;  // secrets-looking paths left out
  std::vector<std::string> notes;    // how paths were collapsed, what was kept from the base
};

// With `base`, its metadata is kept (revision + 1), and a section the run did not exercise
// (no opens, no execs beyond the command, no network) keeps the base's grants unchanged.
LearnResult learn_manifest(const Observation& observation, const LearnOptions& options,
                           const std::optional<Manifest>& base);

// True for paths that look like credentials (.ssh, .aws, .netrc, .gnupg, id_rsa...).
bool looks_secret(const std::string& path);

}  // namespace policy
