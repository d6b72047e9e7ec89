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

AuditVerification verify_audit(const std::vector<AuditInput>& files) {
  AuditVerification out;
  std::vector<Line> lines;
  auto problem = [&](size_t file, uint64_t line, std::string why) {
    out.problems.push_back({file, line, std::move(why)});
  };
  auto where = [&](size_t pos) {
    return files[lines[pos].file].name + ":" + std::to_string(lines[pos].number);
  };

  // Lines of every file; an incomplete last line is a fragment, outside the chain.
  std::vector<size_t> complete_lines(files.size(), 0);
  std::vector<size_t> file_first(files.size(), 0);
  for (size_t f = 0; f < files.size(); ++f) {
    std::string_view content = files[f].content;
    file_first[f] = lines.size();
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
      Line l;
      l.file = f;
      l.number = number;
      l.bytes = content.substr(0, nl);
      content.remove_prefix(nl + 1);
      l.hash = line_hash(l.bytes);
      l.record = nlohmann::json::parse(l.bytes.begin(), l.bytes.end(), nullptr, false);
      if (l.record.is_discarded() || !l.record.is_object()) {
        l.record = nullptr;
        problem(f, number, l.bytes.empty() ? "empty line" : "not a JSON object");
      } else if (!is_hex64(l.record.value("prev", nlohmann::json()))) {
        problem(f, number, "no \"prev\" (64 hex digits): not a line of an audit log");
      } else {
        l.prev = l.record["prev"].get<std::string>();
      }
      lines.push_back(std::move(l));
      ++complete_lines[f];
    }
  }
  out.lines = lines.size();
  std::unordered_map<std::string_view, size_t> position_of_hash;
  for (size_t i = 0; i < lines.size(); ++i)
    position_of_hash.emplace(lines[i].hash, i);

  // Heads: lines appended after the collector's last one, lines cut from the end, the last
  // line altered.
  std::vector<size_t> appended_from(files.size(), SIZE_MAX);
  std::vector<bool> head_confirms_last(files.size(), false);
  for (size_t f = 0; f < files.size(); ++f) {
    if (!files[f].head) continue;
    const AuditHead& h = *files[f].head;
    std::string head_name = files[f].name + ".head";
    size_t m = complete_lines[f];
    if (m > h.lines) {
      appended_from[f] = file_first[f] + h.lines;
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
      const Line& last = lines[file_first[f] + h.lines - 1];
      if (last.hash != h.last_sha256) {
        problem(f, h.lines,
                "altered: its SHA-256 " + short_hash(last.hash) + " is not the one " + head_name +
                    " records (" + short_hash(h.last_sha256) + ")");
      } else if (m == h.lines) {
        head_confirms_last[f] = true;
      }
    }
  }

  // Runs: start first, seq gap-free or covered by `lost`, nothing after `exit`.
  std::map<std::string, RunProgress> runs;
  std::vector<SeqGap> gaps;
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json& r = lines[i].record;
    if (r.is_null()) continue;
    size_t f = lines[i].file;
    uint64_t number = lines[i].number;
    std::string type = r.value("type", "");
    if (type == "collector") {
      if (r.contains("head_mismatch")) {
        problem(f, number,
                "the collector found the log altered while no collector ran: " +
                    r["head_mismatch"].get<std::string>());
      }
      if (i == 0 && r.value("event", "") == "rotated" && r.contains("open_runs") &&
          r["open_runs"].is_object()) {
        for (auto it = r["open_runs"].begin(); it != r["open_runs"].end(); ++it) {
          RunProgress& p = runs[it.key()];
          p.summary = out.runs.size();
          p.next_seq = it.value().value("next_seq", uint64_t{0});
          p.last_position = i;
          AuditRunSummary s;
          s.run = it.key();
          s.manifest = it.value().value("manifest", "");
          s.file = files[f].name;
          s.line = number;
          out.runs.push_back(s);
        }
      }
      continue;
    }
    if (!r.contains("run") || !r["run"].is_string() || !r.contains("seq") ||
        !r["seq"].is_number_unsigned() || type.empty()) {
      problem(f, number, "neither a collector record nor an event (run, seq, type)");
      continue;
    }
    std::string run = r["run"].get<std::string>();
    uint64_t seq = r["seq"].get<uint64_t>();
    auto it = runs.find(run);
    if (it == runs.end()) {
      RunProgress p;
      p.summary = out.runs.size();
      AuditRunSummary s;
      s.run = run;
      if (r.contains("manifest") && r["manifest"].is_object())
        s.manifest = r["manifest"].value("name", "");
      s.file = files[f].name;
      s.line = number;
      out.runs.push_back(s);
      if (type != "start" || seq != 0) {
        problem(
            f, number,
            "record of run " + run + " (seq " + std::to_string(seq) + ", " + type +
                ") before its start: the start was removed, or is in an earlier file not given");
        p.next_seq = seq;
      }
      it = runs.emplace(run, p).first;
    }
    RunProgress& p = it->second;
    AuditRunSummary& s = out.runs[p.summary];
    if (p.closed) {
      problem(f, number,
              "record of run " + run + " after its exit (" + where(p.last_position) + ")");
    } else if (seq < p.next_seq) {
      problem(f, number,
              "seq " + std::to_string(seq) + " of run " + run + " repeats or goes back (expected " +
                  std::to_string(p.next_seq) + ")");
    } else if (seq > p.next_seq) {
      problem(f, number,
              "seq of run " + run + " jumps from " + std::to_string(p.next_seq) + " to " +
                  std::to_string(seq) + ": records " + std::to_string(p.next_seq) + ".." +
                  std::to_string(seq - 1) + " are missing and no lost record covers them");
      gaps.push_back({p.last_position, i});
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

  // The chain. Its problems come first among those of the same line: they say what happened
  // to the file; the others are their consequences.
  std::vector<AuditProblem> run_problems = std::move(out.problems);
  out.problems.clear();
  auto link_ok = [&](size_t i) {
    if (lines[i].prev.empty()) return false;
    if (i == 0) return lines[i].prev == kGenesisHash;
    return lines[i].prev == lines[i - 1].hash;
  };
  std::vector<bool> ok(lines.size());
  for (size_t i = 0; i < lines.size(); ++i)
    ok[i] = link_ok(i);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (ok[i] || lines[i].prev.empty()) continue;
    size_t f = lines[i].file;
    uint64_t number = lines[i].number;
    if (i >= appended_from[f]) continue;  // reported as appended
    if (i == 0) {
      const nlohmann::json& r = lines[0].record;
      if (r.value("type", "") == "collector" && r.value("event", "") == "rotated") {
        out.continues_earlier_file = true;
      } else {
        problem(f, number,
                "the chain does not start here (prev is not 000…): lines before it were removed, "
                "or earlier files "
                "were not given (give them oldest first)");
      }
      continue;
    }
    if (i > 0 && lines[i - 1].file != f && number == 1) {
      // The first line of a file chains to the last line of the file before it.
      const nlohmann::json& r = lines[i].record;
      if (r.value("type", "") != "collector" || r.value("event", "") != "rotated") {
        problem(f, number,
                "does not chain to the last line of " + files[lines[i - 1].file].name +
                    ": the files are not consecutive, or are given out of order (oldest first)");
        continue;
      }
    }
    bool has_successor = i + 1 < lines.size() && !lines[i + 1].prev.empty();
    // This line is itself vouched for: the next line chains to it, or it is the last line the
    // head records.
    bool confirmed = (has_successor && ok[i + 1]) ||
                     (i + 1 == file_first[f] + complete_lines[f] && head_confirms_last[f]);
    auto found = position_of_hash.find(lines[i].prev);
    if (found != position_of_hash.end() && found->second > i) {
      problem(f, number,
              "out of order: its prev is the SHA-256 of " + where(found->second) +
                  ", which comes after it (lines were swapped or moved)");
      continue;
    }
    if (found != position_of_hash.end() && found->second + 1 < i && confirmed) {
      size_t first_inserted = found->second + 1;
      problem(lines[first_inserted].file, lines[first_inserted].number,
              "inserted: " + where(i) + " chains to " + where(found->second) + ", so the " +
                  std::to_string(i - first_inserted) + " line(s) from here to " + where(i - 1) +
                  " were added by hand or moved");
      continue;
    }
    if (has_successor && !ok[i + 1]) {
      problem(f, number,
              "altered: its prev does not match " + where(i - 1) + " and the prev of " +
                  where(i + 1) + " does not match it");
      ok[i + 1] = true;  // explained by this line
      continue;
    }
    bool removed = std::any_of(gaps.begin(), gaps.end(),
                               [&](const SeqGap& g) { return g.before < i && i <= g.after; });
    if (removed) {
      problem(f, number,
              "lines were removed before this one: its prev (" + short_hash(lines[i].prev) +
                  ") is not the SHA-256 of " + where(i - 1) + ", and a run's seq has a gap here");
    } else if (confirmed) {
      problem(lines[i - 1].file, lines[i - 1].number,
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

  out.problems.insert(out.problems.end(), run_problems.begin(), run_problems.end());
  std::stable_sort(out.problems.begin(), out.problems.end(),
                   [](const AuditProblem& a, const AuditProblem& b) {
                     return a.file != b.file ? a.file < b.file : a.line < b.line;
                   });
  return out;
}

}  // namespace launcher
