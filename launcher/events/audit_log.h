// The audit log file as the collector writes it: append-only JSON Lines, hash-chained
// (audit_chain.h), batched writes, fsync before durable records are acknowledged, size-based
// rotation that keeps the chain (FILE -> FILE.1 -> FILE.2 ...), an anchor beside the active
// file (FILE.head: its line count and last hash), and recovery of the chain and of open runs
// when a collector starts on an existing log.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"
#include "launcher/events/audit_chain.h"
#include "launcher/events/audit_signing.h"

namespace launcher {

struct AuditLogRecovery {
  std::string file;              // the file the chain was recovered from ("" for a new log)
  uint64_t lines = 0;            // complete lines found in it
  uint64_t truncated_bytes = 0;  // an incomplete last line, cut off (never acknowledged)
  std::string head_mismatch;     // the file does not match its head: why
  uint64_t lines_after_head =
      0;  // written after the head was last updated (a crash between the two)
  // FILE was missing but FILE.1 was there: the rotation was interrupted; the caller must
  // start the new file with begin_rotated_file().
  bool rotation_interrupted = false;
  std::map<std::string, AuditRunState> runs;
};

// Which rotated files (FILE.1, FILE.2, ...) a rotation keeps; 0 is no limit. The newest rotated
// file is always kept; older ones go when there are more than `files` of them or when, with
// the newer ones, they would pass `bytes`.
struct AuditRetention {
  uint64_t files = 0;
  uint64_t bytes = 0;
  bool limited() const { return files > 0 || bytes > 0; }
};

// What a record appended to the log is, for the counts a signed head carries.
enum class AuditRecordKind {
  event,      // a launcher's record
  run_start,  // a launcher's start record
  collector,  // a record of the collector's own
};

class AuditLog {
 public:
  // Opens (creating, mode 0600) the log at `path`, takes the instance lock (one collector per
  // log) and recovers the chain. With `signing` enabled, rotate() ends each file with a signed
  // head and append_head() writes one. Throws LaunchError with the path and reason.
  AuditLog(std::string path, uint64_t rotate_bytes, AuditRetention retention = {},
           AuditSigning signing = {});
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  const AuditLogRecovery& recovery() const { return recovery_; }

  // Chains one record (a JSON object line without newline) and buffers it. A durable record
  // makes the next commit() fsync before returning.
  void append(std::string_view object_line, bool durable,
              AuditRecordKind kind = AuditRecordKind::event);
  // Buffers a signed head (audit_signing.h) when signing is enabled; `reason` is start,
  // interval, rotation or shutdown.
  void append_head(std::string_view reason, uint64_t open_runs);
  // Signing is enabled, records were appended since the last head, and the last head is at
  // least the signing interval old.
  bool head_due() const;
  // Writes what is buffered in one write(2), fsyncs when a durable record is among it, and
  // updates the head.
  void commit();
  // fsyncs the log and the head when something written is not yet on disk.
  void sync();

  bool needs_rotation() const { return rotate_bytes_ > 0 && bytes_ >= rotate_bytes_; }
  // Renames FILE to FILE.1 (FILE.1 to FILE.2, ...), deletes the rotated files the retention
  // does not keep, and starts a new FILE whose first line, a collector record of event
  // "rotated" listing `open_runs` and what was pruned, chains to the old file's last line.
  void rotate(const nlohmann::json& open_runs);
  // After an interrupted rotation: the new FILE's first record.
  void begin_rotated_file(const nlohmann::json& open_runs);

  const std::string& path() const { return path_; }
  uint64_t lines() const { return lines_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t fsyncs() const { return fsyncs_; }
  uint64_t rotations() const { return rotations_; }
  uint64_t pruned_files() const { return pruned_files_; }

  // The collector record of a rotation, as a JSON object line; `pruned` (an array of
  // {"file","lines","last_sha256"}) only when not empty.
  static std::string rotation_record(const std::string& previous_file, uint64_t previous_lines,
                                     const nlohmann::json& open_runs,
                                     const nlohmann::json& pruned = nlohmann::json::array());

 private:
  void open_file(bool create_new);
  void recover();
  void recover_heads();
  void write_head();
  void sync_directory();
  // Deletes FILE.(n) ... FILE.(highest) the retention does not keep; returns what it deleted.
  nlohmann::json prune(int highest);

  std::string path_;
  uint64_t rotate_bytes_;
  AuditRetention retention_;
  uint64_t pruned_files_ = 0;
  UniqueFd fd_;
  UniqueFd head_fd_;
  std::string prev_hash_;
  std::string buffer_;
  uint64_t buffered_lines_ = 0;
  bool buffered_durable_ = false;
  bool unsynced_ = false;
  uint64_t lines_ = 0;
  uint64_t bytes_ = 0;
  uint64_t fsyncs_ = 0;
  uint64_t rotations_ = 0;
  AuditLogRecovery recovery_;
  // Signed heads: the last one's SHA-256, the log line before this file's first, the file's
  // event and start records, the lines since the last head and when it was written.
  AuditSigning signing_;
  std::string last_head_sha256_;
  uint64_t file_base_line_ = 0;
  uint64_t file_records_ = 0;
  uint64_t file_runs_ = 0;
  uint64_t lines_since_head_ = 0;
  std::chrono::steady_clock::time_point last_head_time_ = std::chrono::steady_clock::now();
};

}  // namespace launcher
