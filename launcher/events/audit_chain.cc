#include "launcher/events/audit_chain.h"

#include <algorithm>
#include <unordered_map>

#include "policy/digest.h"

namespace launcher {
namespace {

bool is_hex64(const nlohmann::json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string short_hash(std::string_view h) {
  return std::string(h.substr(0, 12)) + "…";
}

struct Line {
  size_t file = 0;
  uint64_t number = 0;  // 1-based within its file
  std::string_view bytes;
  std::string hash;
  nlohmann::json record;  // null when the line is not a JSON object
  std::string prev;       // empty when absent or malformed
};

struct RunProgress {
  size_t summary = 0;  // index into AuditVerification::runs
  uint64_t next_seq = 0;
  size_t last_position = 0;  // global index of its last record
  bool closed = false;
};

// A gap in some run's seq: between the records at global positions `before` and `after`.
struct SeqGap {
  size_t before = 0;
  size_t after = 0;
};

}  // namespace

bool is_durable_record_type(std::string_view type) {
  return type == "start" || type == "deny" || type == "budget" || type == "rule" ||
         type == "exit" || type == "lost" || type == "collector";
}

std::string line_hash(std::string_view line) {
  return policy::sha256_hex(line);
}

std::string chain_line(std::string_view prev, std::string_view object_line) {
  std::string out;
  out.reserve(object_line.size() + 80);
  out += "{\"prev\":\"";
  out += prev;
  out += "\",";
  out += object_line.substr(1);
  return out;
}

std::string append_members(std::string_view object_line, std::string_view members) {
  std::string out(object_line.substr(0, object_line.size() - 1));
  if (out.size() > 1) out += ',';
  out += members;
  out += '}';
  return out;
}

std::optional<AuditHead> AuditHead::parse(std::string_view text, std::string& error) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  if (!j.contains("lines") || !j["lines"].is_number_unsigned() ||
      !is_hex64(j.value("last_sha256", nlohmann::json()))) {
    error = "expected {\"lines\": N, \"last_sha256\": HEX}";
    return std::nullopt;
  }
  AuditHead h;
  h.lines = j["lines"].get<uint64_t>();
  h.last_sha256 = j["last_sha256"].get<std::string>();
  return h;
}

std::string AuditHead::encode(const std::string& file_name) const {
  nlohmann::ordered_json j;
  j["file"] = file_name;
  j["lines"] = lines;
  j["last_sha256"] = last_sha256;
  std::string s = j.dump(-1, ' ', true);
  if (s.size() < 255) s.append(255 - s.size(), ' ');
  return s + "\n";
}

void replay_audit_record(const nlohmann::json& r, std::map<std::string, AuditRunState>& runs) {
  if (!r.is_object()) return;
  std::string type = r.value("type", "");
  if (type == "collector") {
    if (r.value("event", "") == "rotated" && r.contains("open_runs") &&
        r["open_runs"].is_object()) {
      for (auto it = r["open_runs"].begin(); it != r["open_runs"].end(); ++it) {
        AuditRunState& s = runs[it.key()];
        s.token_sha256 = it.value().value("token_sha256", "");
        s.next_seq = it.value().value("next_seq", uint64_t{0});
        s.manifest = it.value().value("manifest", "");
        s.closed = false;
      }
    }
    return;
  }
  if (!r.contains("run") || !r["run"].is_string() || !r.contains("seq") ||
      !r["seq"].is_number_unsigned())
    return;
  std::string run = r["run"].get<std::string>();
  uint64_t seq = r["seq"].get<uint64_t>();
  if (type == "start" && !runs.count(run)) {
    AuditRunState& s = runs[run];
    if (r.contains("received") && r["received"].is_object()) {
      s.token_sha256 = r["received"].value("token_sha256", "");
    }
    if (r.contains("manifest") && r["manifest"].is_object()) {
      s.manifest = r["manifest"].value("name", "");
    }
  }
  auto it = runs.find(run);
  if (it == runs.end()) return;
  AuditRunState& s = it->second;
  uint64_t last = seq;
  if (type == "lost" && r.contains("last_seq") && r["last_seq"].is_number_unsigned()) {
    last = std::max(last, r["last_seq"].get<uint64_t>());
  }
  s.next_seq = std::max(s.next_seq, last + 1);
  if (type == "exit") s.closed = true;
}

namespace {

// verify_audit's steps over the lines of every file, in order: split the files into lines,
// compare the heads, follow each run's records, then follow the chain.
class AuditVerifier {
 public:
  explicit AuditVerifier(const std::vector<AuditInput>& files)
      : files_(files),
        complete_lines_(files.size(), 0),
        file_first_(files.size(), 0),
        appended_from_(files.size(), SIZE_MAX),
        head_confirms_last_(files.size(), false) {}

  AuditVerification verify() {
    split_lines();
    check_heads();
    check_runs();
    check_chain();
    find_pruned_predecessor();
    return std::move(out_);
  }

 private:
  void problem(size_t file, uint64_t line, std::string why) {
    out_.problems.push_back({file, line, std::move(why)});
  }
  std::string where(size_t pos) const {
    return files_[lines_[pos].file].name + ":" + std::to_string(lines_[pos].number);
  }

  void split_lines();
  Line parse_line(size_t file, uint64_t number, std::string_view bytes);
  void check_heads();
  void check_head(size_t file, const AuditHead& head);
  void check_runs();
  void continue_rotated_runs(size_t pos, const nlohmann::json& record);
  RunProgress& progress_of(size_t pos, const std::string& run, uint64_t seq,
                           const std::string& type);
  void check_record(size_t pos, const nlohmann::json& record, const std::string& type);
  void check_chain();
  void explain_broken_link(size_t i, std::vector<bool>& ok);
  bool link_ok(size_t i) const;
  void find_pruned_predecessor();

  const std::vector<AuditInput>& files_;
  AuditVerification out_;
  std::vector<Line> lines_;
  std::vector<size_t> complete_lines_;  // per file
  std::vector<size_t> file_first_;      // per file: the global position of its first line
  std::unordered_map<std::string_view, size_t> position_of_hash_;
  std::vector<size_t> appended_from_;     // per file: first line written after its head's
  std::vector<bool> head_confirms_last_;  // per file: its head vouches for its last line
  std::map<std::string, RunProgress> runs_;
  std::vector<SeqGap> gaps_;
};

// Lines of every file; an incomplete last line is a fragment, outside the chain.
void AuditVerifier::split_lines() {
  for (size_t f = 0; f < files_.size(); ++f) {
    std::string_view content = files_[f].content;
    file_first_[f] = lines_.size();
    uint64_t number = 0;
    while (!content.empty()) {
      ++number;
      size_t nl = content.find('\n');
      if (nl == std::string_view::npos) {
        problem(f, number,
                "incomplete last line (no newline): the file was cut short, or the collector is "
                "writing it");
        break;
      }
      lines_.push_back(parse_line(f, number, content.substr(0, nl)));
      content.remove_prefix(nl + 1);
      ++complete_lines_[f];
    }
  }
  out_.lines = lines_.size();
  for (size_t i = 0; i < lines_.size(); ++i)
    position_of_hash_.emplace(lines_[i].hash, i);
}

Line AuditVerifier::parse_line(size_t file, uint64_t number, std::string_view bytes) {
  Line l;
  l.file = file;
  l.number = number;
  l.bytes = bytes;
  l.hash = line_hash(l.bytes);
  l.record = nlohmann::json::parse(l.bytes.begin(), l.bytes.end(), nullptr, false);
  if (l.record.is_discarded() || !l.record.is_object()) {
    l.record = nullptr;
    problem(file, number, l.bytes.empty() ? "empty line" : "not a JSON object");
  } else if (!is_hex64(l.record.value("prev", nlohmann::json()))) {
    problem(file, number, "no \"prev\" (64 hex digits): not a line of an audit log");
  } else {
    l.prev = l.record["prev"].get<std::string>();
  }
  return l;
}

// Heads: lines appended after the collector's last one, lines cut from the end, the last line
// altered.
void AuditVerifier::check_heads() {
  for (size_t f = 0; f < files_.size(); ++f) {
    if (files_[f].head) check_head(f, *files_[f].head);
  }
}

void AuditVerifier::check_head(size_t f, const AuditHead& h) {
  std::string head_name = files_[f].name + ".head";
  size_t m = complete_lines_[f];
  if (m > h.lines) {
    appended_from_[f] = file_first_[f] + h.lines;
    problem(f, h.lines + 1,
            "written after the collector's last line (" + head_name + " records " +
                std::to_string(h.lines) + " lines): appended by hand");
  } else if (m < h.lines) {
    problem(f, m + 1,
            "lines " + std::to_string(m + 1) + ".." + std::to_string(h.lines) + " are missing (" +
                head_name + " records " + std::to_string(h.lines) +
                " lines): the file was truncated");
  }
  if (h.lines > 0 && m >= h.lines) {
    const Line& last = lines_[file_first_[f] + h.lines - 1];
    if (last.hash != h.last_sha256) {
      problem(f, h.lines,
              "altered: its SHA-256 " + short_hash(last.hash) + " is not the one " + head_name +
                  " records (" + short_hash(h.last_sha256) + ")");
    } else if (m == h.lines) {
      head_confirms_last_[f] = true;
    }
  }
}

// Runs: start first, seq gap-free or covered by `lost`, nothing after `exit`.
void AuditVerifier::check_runs() {
  for (size_t i = 0; i < lines_.size(); ++i) {
    const nlohmann::json& r = lines_[i].record;
    if (r.is_null()) continue;
    size_t f = lines_[i].file;
    uint64_t number = lines_[i].number;
    std::string type = r.value("type", "");
    if (type == "head") continue;  // a signed head: audit_signing.h checks it
    if (type == "collector") {
      if (r.contains("head_mismatch")) {
        problem(f, number,
                "the collector found the log altered while no collector ran: " +
                    r["head_mismatch"].get<std::string>());
      }
      if (i == 0) continue_rotated_runs(i, r);
      continue;
    }
    if (!r.contains("run") || !r["run"].is_string() || !r.contains("seq") ||
        !r["seq"].is_number_unsigned() || type.empty()) {
      problem(f, number, "neither a collector record nor an event (run, seq, type)");
      continue;
    }
    check_record(i, r, type);
  }
}

// A log that begins with a rotation record: the runs it lists as open continue here.
void AuditVerifier::continue_rotated_runs(size_t pos, const nlohmann::json& r) {
  if (r.value("event", "") != "rotated" || !r.contains("open_runs") || !r["open_runs"].is_object())
    return;
  for (auto it = r["open_runs"].begin(); it != r["open_runs"].end(); ++it) {
    RunProgress& p = runs_[it.key()];
    p.summary = out_.runs.size();
    p.next_seq = it.value().value("next_seq", uint64_t{0});
    p.last_position = pos;
    AuditRunSummary s;
    s.run = it.key();
    s.manifest = it.value().value("manifest", "");
    s.file = files_[lines_[pos].file].name;
    s.line = lines_[pos].number;
    out_.runs.push_back(s);
  }
}

// The run's progress; its first record begins its summary (and must be its start).
RunProgress& AuditVerifier::progress_of(size_t pos, const std::string& run, uint64_t seq,
                                        const std::string& type) {
  auto it = runs_.find(run);
  if (it != runs_.end()) return it->second;
  const nlohmann::json& r = lines_[pos].record;
  RunProgress p;
  p.summary = out_.runs.size();
  AuditRunSummary s;
  s.run = run;
  if (r.contains("manifest") && r["manifest"].is_object())
    s.manifest = r["manifest"].value("name", "");
  s.file = files_[lines_[pos].file].name;
  s.line = lines_[pos].number;
  out_.runs.push_back(s);
  if (type != "start" || seq != 0) {
    problem(lines_[pos].file, lines_[pos].number,
            "record of run " + run + " (seq " + std::to_string(seq) + ", " + type +
                ") before its start: the start was removed, or is in an earlier file not given");
    p.next_seq = seq;
  }
  return runs_.emplace(run, p).first->second;
}

void AuditVerifier::check_record(size_t i, const nlohmann::json& r, const std::string& type) {
  size_t f = lines_[i].file;
  uint64_t number = lines_[i].number;
  std::string run = r["run"].get<std::string>();
  uint64_t seq = r["seq"].get<uint64_t>();
  RunProgress& p = progress_of(i, run, seq, type);
  AuditRunSummary& s = out_.runs[p.summary];
  if (p.closed) {
    problem(f, number, "record of run " + run + " after its exit (" + where(p.last_position) + ")");
  } else if (seq < p.next_seq) {
    problem(f, number,
            "seq " + std::to_string(seq) + " of run " + run + " repeats or goes back (expected " +
                std::to_string(p.next_seq) + ")");
  } else if (seq > p.next_seq) {
    problem(f, number,
            "seq of run " + run + " jumps from " + std::to_string(p.next_seq) + " to " +
                std::to_string(seq) + ": records " + std::to_string(p.next_seq) + ".." +
                std::to_string(seq - 1) + " are missing and no lost record covers them");
    gaps_.push_back({p.last_position, i});
  }
  if (type == "start" && seq != 0)
    problem(f, number, "a start record with seq " + std::to_string(seq));
  uint64_t last = seq;
  if (type == "lost" && r.contains("first_seq")) {
    if (!r["first_seq"].is_number_unsigned() || !r.contains("last_seq") ||
        !r["last_seq"].is_number_unsigned() || r["first_seq"].get<uint64_t>() != seq ||
        r["last_seq"].get<uint64_t>() < seq) {
      problem(f, number, "a lost record whose first_seq/last_seq do not start at its own seq");
    } else {
      last = r["last_seq"].get<uint64_t>();
      s.lost += last - seq + 1;
    }
  }
  if (seq >= p.next_seq) p.next_seq = last + 1;
  p.last_position = i;
  ++s.records;
  if (type == "exit") {
    p.closed = true;
    s.closed = true;
    s.ended_by = r.value("ended_by", "");
  }
}

bool AuditVerifier::link_ok(size_t i) const {
  if (lines_[i].prev.empty()) return false;
  if (i == 0) return lines_[i].prev == kGenesisHash;
  return lines_[i].prev == lines_[i - 1].hash;
}

// The chain. Its problems come first among those of the same line: they say what happened to
// the file; the others are their consequences.
void AuditVerifier::check_chain() {
  std::vector<AuditProblem> earlier_problems = std::move(out_.problems);
  out_.problems.clear();
  std::vector<bool> ok(lines_.size());
  for (size_t i = 0; i < lines_.size(); ++i)
    ok[i] = link_ok(i);
  for (size_t i = 0; i < lines_.size(); ++i) {
    if (ok[i] || lines_[i].prev.empty()) continue;
    if (i >= appended_from_[lines_[i].file]) continue;  // reported as appended
    explain_broken_link(i, ok);
  }
  out_.problems.insert(out_.problems.end(), earlier_problems.begin(), earlier_problems.end());
  std::stable_sort(out_.problems.begin(), out_.problems.end(),
                   [](const AuditProblem& a, const AuditProblem& b) {
                     return a.file != b.file ? a.file < b.file : a.line < b.line;
                   });
}

// Line i's prev is not the hash of the line before it: says what most likely happened.
void AuditVerifier::explain_broken_link(size_t i, std::vector<bool>& ok) {
  size_t f = lines_[i].file;
  uint64_t number = lines_[i].number;
  const nlohmann::json& r = lines_[i].record;
  bool rotated = r.value("type", "") == "collector" && r.value("event", "") == "rotated";
  if (i == 0) {
    if (rotated) {
      out_.continues_earlier_file = true;
    } else {
      problem(f, number,
              "the chain does not start here (prev is not 000…): lines before it were removed, "
              "or earlier files "
              "were not given (give them oldest first)");
    }
    return;
  }
  if (lines_[i - 1].file != f && number == 1 && !rotated) {
    // The first line of a file chains to the last line of the file before it.
    problem(f, number,
            "does not chain to the last line of " + files_[lines_[i - 1].file].name +
                ": the files are not consecutive, or are given out of order (oldest first)");
    return;
  }
  bool has_successor = i + 1 < lines_.size() && !lines_[i + 1].prev.empty();
  // This line is itself vouched for: the next line chains to it, or it is the last line the
  // head records.
  bool confirmed = (has_successor && ok[i + 1]) ||
                   (i + 1 == file_first_[f] + complete_lines_[f] && head_confirms_last_[f]);
  auto found = position_of_hash_.find(lines_[i].prev);
  if (found != position_of_hash_.end() && found->second > i) {
    problem(f, number,
            "out of order: its prev is the SHA-256 of " + where(found->second) +
                ", which comes after it (lines were swapped or moved)");
    return;
  }
  if (found != position_of_hash_.end() && found->second + 1 < i && confirmed) {
    size_t first_inserted = found->second + 1;
    problem(lines_[first_inserted].file, lines_[first_inserted].number,
            "inserted: " + where(i) + " chains to " + where(found->second) + ", so the " +
                std::to_string(i - first_inserted) + " line(s) from here to " + where(i - 1) +
                " were added by hand or moved");
    return;
  }
  if (has_successor && !ok[i + 1]) {
    problem(f, number,
            "altered: its prev does not match " + where(i - 1) + " and the prev of " +
                where(i + 1) + " does not match it");
    ok[i + 1] = true;  // explained by this line
    return;
  }
  bool removed = std::any_of(gaps_.begin(), gaps_.end(),
                             [&](const SeqGap& g) { return g.before < i && i <= g.after; });
  if (removed) {
    problem(f, number,
            "lines were removed before this one: its prev (" + short_hash(lines_[i].prev) +
                ") is not the SHA-256 of " + where(i - 1) + ", and a run's seq has a gap here");
  } else if (confirmed) {
    problem(lines_[i - 1].file, lines_[i - 1].number,
            "altered: its SHA-256 is not the prev recorded by " + where(i) +
                " (or lines between them were removed)");
  } else {
    problem(f, number,
            "its prev is not the SHA-256 of " + where(i - 1) +
                ": this line was appended or altered by hand (or the one before it was altered, "
                "or lines "
                "between them were removed)");
  }
}

}  // namespace

// The first line continues a file that is not given: a rotation record that pruned it says so.
void AuditVerifier::find_pruned_predecessor() {
  if (!out_.continues_earlier_file || lines_.empty()) return;
  auto text = [](const nlohmann::json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  for (const Line& l : lines_) {
    const nlohmann::json& r = l.record;
    if (!r.is_object() || text(r, "event") != "rotated" || !r.contains("pruned") ||
        !r["pruned"].is_array())
      continue;
    for (const nlohmann::json& p : r["pruned"]) {
      if (!p.is_object() || text(p, "last_sha256") != lines_[0].prev) continue;
      auto count = p.find("lines");
      out_.pruned_predecessor =
          text(p, "file") + " (" +
          (count != p.end() && count->is_number_unsigned() ? std::to_string(count->get<uint64_t>())
                                                           : std::string("?")) +
          " lines)";
      return;
    }
  }
}

AuditVerification verify_audit(const std::vector<AuditInput>& files) {
  return AuditVerifier(files).verify();
}

}  // namespace launcher
