// Signed heads in the audit log (`collect --sign-key`, `audit verify --key`). A head is a line of
// the chain like every other, of type "head": where it stands (its line in the file and in the
// whole log), the previous head's SHA-256, record and run counts, the host, the time, and an
// Ed25519 signature of the collector's key. Its "prev" is the tip: the SHA-256 of the line
// before it, which chains to every line before that. Whoever can write the log but has not the
// key can no longer rewrite the chain unnoticed.
//
// Canonical encoding: the signature (base64, member "sig", always the last member) is over
// the bytes "enclosure-audit-head-v1\n" followed by the head line as written up to the comma
// before "sig", followed by "}": the line as it was before its signature was added.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "launcher/events/audit_chain.h"

struct evp_pkey_st;

namespace launcher {

inline constexpr std::string_view kHeadSignatureDomain = "enclosure-audit-head-v1\n";

// An Ed25519 key: the collector's private key, or a public key to verify with.
class AuditKey {
 public:
  // An Ed25519 private key in PEM. Refused, naming the file: a file group or others may read,
  // a key of another type, a file that cannot be read. Throws LaunchError.
  static AuditKey load_private(const std::string& path);
  // An Ed25519 public key in PEM ("PUBLIC KEY"), or the public half of a private key file.
  static AuditKey load_public(const std::string& path);
  // The 32 raw bytes of a public key (as a head carries them, base64); nullopt when invalid.
  static std::optional<AuditKey> from_raw_public(std::string_view raw);

  // Lower-case hex SHA-256 of the raw 32-byte public key.
  const std::string& id() const { return id_; }
  std::string public_key_base64() const;
  // Base64 Ed25519 signature; only for a private key.
  std::string sign(std::string_view message) const;
  bool verify(std::string_view message, std::string_view signature_base64) const;

 private:
  AuditKey(std::shared_ptr<evp_pkey_st> key, bool has_private);
  std::shared_ptr<evp_pkey_st> key_;
  bool has_private_ = false;
  std::string raw_public_;
  std::string id_;
};

// What the collector signs with, and what it says of itself in every head.
struct AuditSigning {
  std::shared_ptr<const AuditKey> key;  // null: no heads are written
  std::string next_key_id;              // --next-key: announced in every head
  uint64_t interval_seconds = 300;      // --sign-interval
  std::string hostname;
  std::string machine_id;
  bool enabled() const { return key != nullptr; }
};

// /etc/machine-id without its newline; "" when it cannot be read.
std::string read_machine_id();

// Where a head stands and what it covers.
struct AuditHeadPosition {
  std::string reason;     // start, interval, rotation, shutdown
  std::string file;       // the file's name when written (audit.log)
  uint64_t line = 0;      // the head's own line in the file, 1-based
  uint64_t log_line = 0;  // ... and in the whole log, across rotations
  uint64_t records = 0;   // event records in the file before the head
  uint64_t runs = 0;      // start records in the file before the head
  uint64_t open_runs = 0;
  std::string prev_head;  // SHA-256 of the previous head line (kGenesisHash for the first)
};

// The head line, chained to `tip` (its "prev") and signed.
std::string signed_head_line(const AuditSigning& signing, const AuditHeadPosition& position,
                             std::string_view tip);

// The bytes a head line's signature covers, and its signature; nullopt when the line does not
// end with a "sig" member.
std::optional<std::string> head_signed_bytes(std::string_view line, std::string& signature);

struct AuditHeadReport {
  std::vector<AuditProblem> problems;  // a problem fails the verification
  std::vector<std::string> notes;      // said, not failed
  uint64_t heads = 0;
  std::set<std::string> signing_keys;  // key ids that signed the heads
  bool keys_given = false;
  uint64_t uncovered_lines = 0;  // after the last head
  std::string uncovered_since;   // ts of the first of them
  std::string last_head_ts;
  bool ends_with_shutdown_head = false;
  std::string cut_after;  // the last head's ts when records may have been cut after it
  bool ok() const { return problems.empty(); }
};

// Checks the heads of the files (oldest first): signatures (by a given key, or by a key a
// trusted head announced as next_key_id), the chain of heads, each head's position and counts,
// that every file but the last ends with its rotation head, and what follows the last head.
// `now` decides whether the last head is older than the signing interval.
AuditHeadReport verify_audit_heads(const std::vector<AuditInput>& files,
                                   const std::vector<AuditKey>& keys,
                                   std::chrono::system_clock::time_point now);

// The public keys of `audit verify --key`; a file that is not an Ed25519 key throws LaunchError
// with `error_exit_code`.
std::vector<AuditKey> load_public_keys(const std::vector<std::string>& paths, int error_exit_code);

// The heads' problems among the chain's, in file and line order.
void merge_head_problems(AuditVerification& verification, const AuditHeadReport& heads);

// With --require-closed: a signed log must end with its shutdown head.
bool heads_closed(const AuditHeadReport& heads);

// What `audit verify` says of the heads after the chain's verdict: how many, by which keys,
// the lines no head covers yet, a tail that may have been cut, notes. "" without heads or keys.
std::string head_report_text(const AuditHeadReport& heads);
nlohmann::json head_report_json(const AuditHeadReport& heads);

}  // namespace launcher
