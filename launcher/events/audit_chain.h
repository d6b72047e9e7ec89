// The audit log's hash chain: every line is a JSON object whose first member "prev" is the
// SHA-256 (hex) of the previous line's bytes (without its newline); the very first line of a
// log has 64 zeros. Rotation keeps the chain across files: the first line of a new file chains
// to the last line of the previous one. This file builds lines and verifies files; it does no
// I/O (audit_log.h writes, command_audit.cc reads).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace launcher {

inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Record types that are written durably (fsync) before the collector acknowledges them.
bool is_durable_record_type(std::string_view type);

// Lower-case hex SHA-256 of one line (without its newline).
std::string line_hash(std::string_view line);

// `{"prev":"<prev>",` + the rest of `object_line`, a JSON object with at least one member
// and no white space before its opening brace.
std::string chain_line(std::string_view prev, std::string_view object_line);

// `object_line` with `members` (`"key":value,...`, no braces) added before its closing brace.
std::string append_members(std::string_view object_line, std::string_view members);

// The collector's anchor beside the active file (FILE.head): how many lines it has written
// to FILE and the hash of the last one. It detects what a chain alone cannot: lines cut from
// the end of the file, and lines appended after the collector's last one.
struct AuditHead {
  uint64_t lines = 0;
  std::string last_sha256;
  static std::optional<AuditHead> parse(std::string_view text, std::string& error);
  std::string encode(const std::string& file_name) const;  // one line, padded to 256 bytes
};

struct AuditInput {
  std::string name;     // for messages: "audit.log"
  std::string content;  // the file's bytes
  std::optional<AuditHead> head;
};

struct AuditProblem {
  size_t file = 0;    // index into the inputs
  uint64_t line = 0;  // 1-based
  std::string why;
};

struct AuditRunSummary {
  std::string run;
  std::string manifest;  // name
  std::string file;      // where its first record is
  uint64_t line = 0;
  uint64_t records = 0;
  uint64_t lost = 0;  // records covered by `lost` records
  bool closed = false;
  std::string ended_by;
};

struct AuditVerification {
  std::vector<AuditProblem> problems;  // in file order; empty when the files are intact
  std::vector<AuditRunSummary> runs;   // in order of first appearance
  uint64_t lines = 0;
  // The first file starts with a rotation record: the chain continues from a file not given.
  bool continues_earlier_file = false;
  // ... and that file was pruned by the collector (`collect --keep`): the entry of a later
  // rotation record's "pruned" list whose last_sha256 the first line chains to, as
  // "audit.log.3 (1200 lines)"; empty when no given record names it.
  std::string pruned_predecessor;
  bool ok() const { return problems.empty(); }
};

// Checks the files, oldest first: the chain is intact from line to line and file to file;
// each run starts with `start` (seq 0), its seq is gap-free (or the gap is covered by a `lost`
// record with first_seq and last_seq), nothing follows its `exit`; heads match.
AuditVerification verify_audit(const std::vector<AuditInput>& files);

// What the collector needs to resume a log: per run, the SHA-256 of its token, the next seq
// expected and whether it has ended. Replays one record (a parsed line) into `runs`.
struct AuditRunState {
  std::string token_sha256;
  uint64_t next_seq = 0;
  bool closed = false;
  std::string manifest;
};
void replay_audit_record(const nlohmann::json& record, std::map<std::string, AuditRunState>& runs);

}  // namespace launcher
