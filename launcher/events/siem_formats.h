// `enclosure audit show --format ocsf|ecs`: events in the schemas SIEMs read. OCSF 1.3 classes:
// Process Activity (1007) for start, exec, tool_call, exit and the deny of an exec; File System
// Activity (1001) for open and the deny of a file call; Network Activity (4001) for connect and
// the deny of a connection; DNS Activity (4003, of the Network Activity category) for dns;
// Detection Finding (2004) for anomaly, budget, rule and the deny of a system call. ECS 8: the
// same events with event.kind/category/type, process, file, destination, dns and rule fields.
// Both carry the run, the manifest (name, revision, digest), its approver and reason as
// metadata (OCSF metadata.labels and unmapped.enclosure; ECS labels and enclosure.*). Pure:
// records in, records out. The README's "Events in SIEM schemas" documents it field by field.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace launcher {

enum class SiemFormat { ocsf, ecs };

// One human-readable line for an event: "enclosure TYPE: what happened" (the journal's MESSAGE,
// OCSF message, ECS message); start and exit are summarized, not dumped.
std::string event_message(const nlohmann::json& event);

// "ocsf" or "ecs"; nullopt otherwise.
std::optional<SiemFormat> parse_siem_format(std::string_view text);

inline constexpr const char* kOcsfVersion = "1.3.0";
inline constexpr const char* kEcsVersion = "8.11.0";

// Maps the records of audit logs (in log order): it remembers each run's start record, whose
// approver, reason and invoking user the run's later events carry.
class SiemMapper {
 public:
  SiemMapper(SiemFormat format, std::string product_version);
  // The record in the format, or null when it maps to no class (cost, lost, suppressed, window
  // and collector records). `line` is the record's line as logged (OCSF raw_data, ECS
  // event.original); empty: the record dumped.
  nlohmann::json map(const nlohmann::json& record, std::string_view line = {});

 private:
  SiemFormat format_;
  std::string product_version_;
  std::map<std::string, nlohmann::json> starts_;  // run id -> its start record
};

}  // namespace launcher
