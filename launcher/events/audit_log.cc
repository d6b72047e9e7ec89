#include "launcher/events/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/error.h"
#include "launcher/base/file.h"
#include "launcher/events/event.h"

namespace launcher {
namespace {

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// The whole log file, or nullopt when it does not exist. A symbolic link is refused, as the
// appending open (O_NOFOLLOW) refuses it, before recovery could truncate what it points to.
std::optional<std::string> read_log_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    throw_errno("audit log: open " + path, ELOOP);
  }
  try {
    return read_file_if_exists(path);
  } catch (const LaunchError& e) {
    throw LaunchError(std::string("audit log: ") + e.what());
  }
}

// Where the signed heads of one file leave off: the last head's SHA-256, the log line before
// the file's first, and what came after the last head.
struct HeadScan {
  bool found = false;
  std::string last_head_sha256;
  uint64_t file_base_line = 0;
  uint64_t lines = 0;
  uint64_t records = 0;  // event records in the file
  uint64_t runs = 0;     // start records in the file
  uint64_t lines_since_head = 0;
  bool starts_with_rotation = false;
};

HeadScan scan_heads(std::string_view content) {
  HeadScan scan;
  while (!content.empty()) {
    size_t nl = content.find('\n');
    if (nl == std::string_view::npos) break;
    std::string_view line = content.substr(0, nl);
    content.remove_prefix(nl + 1);
    ++scan.lines;
    ++scan.lines_since_head;
    nlohmann::json r = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (!r.is_object() || !r.contains("type") || !r["type"].is_string()) continue;
    const std::string& type = r["type"].get_ref<const std::string&>();
    if (scan.lines == 1)
      scan.starts_with_rotation = type == "collector" && r.value("event", "") == "rotated";
    if (type == "head" && r.value("line", uint64_t{0}) <= r.value("log_line", uint64_t{0})) {
      scan.found = true;
      scan.last_head_sha256 = line_hash(line);
      scan.file_base_line = r.value("log_line", uint64_t{0}) - r.value("line", uint64_t{0});
      scan.lines_since_head = 0;
    } else if (type != "collector" && type != "head" && r.contains("run") && r.contains("seq")) {
      ++scan.records;
      if (type == "start") ++scan.runs;
    }
  }
  return scan;
}

// Holds flock(2) on the head while the log and the head change together; `enclosure audit
// verify` takes it shared, so that it never reads one without the other.
class HeadLock {
 public:
  explicit HeadLock(int fd) : fd_(fd) {
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~HeadLock() { ::flock(fd_, LOCK_UN); }
  HeadLock(const HeadLock&) = delete;
  HeadLock& operator=(const HeadLock&) = delete;

 private:
  int fd_;
};

}  // namespace

AuditLog::AuditLog(std::string path, uint64_t rotate_bytes, AuditRetention retention,
                   AuditSigning signing)
    : path_(std::move(path)),
      rotate_bytes_(rotate_bytes),
      retention_(retention),
      signing_(std::move(signing)),
      last_head_sha256_(kGenesisHash) {
  std::string head_path = path_ + ".head";
  head_fd_.reset(::open(head_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!head_fd_) throw_errno("audit log: open " + head_path);
  // One collector per log: an open-file-description lock on a byte the head never holds.
  struct flock instance {};
  instance.l_type = F_WRLCK;
  instance.l_whence = SEEK_SET;
  instance.l_start = 1 << 20;
  instance.l_len = 1;
  if (::fcntl(head_fd_.get(), F_OFD_SETLK, &instance) != 0) {
    if (errno == EAGAIN || errno == EACCES) {
      throw LaunchError("audit log " + path_ + ": another collector is writing it (" + head_path +
                        " is locked)");
    }
    throw_errno("audit log: lock " + head_path);
  }
  recover();
  if (signing_.enabled()) recover_heads();
  open_file(false);
  sync_directory();
}

AuditLog::~AuditLog() {
  try {
    commit();
    sync();
  } catch (const std::exception&) {
    // Destruction during an error: what could be written was written.
  }
}

void AuditLog::open_file(bool create_new) {
  int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (create_new ? O_EXCL : 0);
  fd_.reset(::open(path_.c_str(), flags, 0600));
  if (!fd_) throw_errno("audit log: open " + path_ + " for appending");
}

void AuditLog::recover() {
  std::optional<AuditHead> head;
  std::string head_text;
  {
    char buf[512];
    ssize_t n = ::pread(head_fd_.get(), buf, sizeof buf, 0);
    if (n > 0) head_text.assign(buf, static_cast<size_t>(n));
    std::string error;
    if (!head_text.empty()) head = AuditHead::parse(head_text, error);
  }
  std::optional<std::string> content = read_log_file(path_);
  bool interrupted = false;
  if (!content) {
    content = read_log_file(path_ + ".1");
    interrupted = content.has_value();
  }
  prev_hash_ = std::string(kGenesisHash);
  if (!content) return;  // a new log
  recovery_.file = interrupted ? path_ + ".1" : path_;
  recovery_.rotation_interrupted = interrupted;
  size_t end = content->rfind('\n');
  size_t complete = end == std::string::npos ? 0 : end + 1;
  if (complete < content->size()) {
    recovery_.truncated_bytes = content->size() - complete;
    std::string target = recovery_.file;
    if (::truncate(target.c_str(), static_cast<off_t>(complete)) != 0) {
      throw_errno("audit log: cut the incomplete last line of " + target);
    }
    content->resize(complete);
  }
  std::string_view rest = *content;
  uint64_t number = 0;
  std::string hash_at_head;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    ++number;
    prev_hash_ = line_hash(line);
    if (head && number == head->lines) hash_at_head = prev_hash_;
    nlohmann::json record = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (!record.is_discarded()) replay_audit_record(record, recovery_.runs);
  }
  recovery_.lines = number;
  if (interrupted) return;
  lines_ = number;
  bytes_ = content->size();
  std::string head_name = base_name(path_) + ".head";
  if (!head) {
    // A head that was never written (a crash before the first commit): nothing to compare.
    recovery_.lines_after_head = number;
  } else if (head->lines > number) {
    recovery_.head_mismatch = head_name + " records " + std::to_string(head->lines) +
                              " lines; the file has " + std::to_string(number) +
                              " (truncated while no collector ran?)";
  } else if (head->lines > 0 && hash_at_head != head->last_sha256) {
    recovery_.head_mismatch = "line " + std::to_string(head->lines) +
                              " does not have the SHA-256 " + head_name +
                              " records (altered while no collector ran?)";
  } else {
    recovery_.lines_after_head = number - head->lines;
  }
}

// Where the heads left off in the recovered file; when it has none and begins with a rotation
// record, in the file before it (FILE.1, which ends with the rotation's head).
void AuditLog::recover_heads() {
  if (recovery_.file.empty()) return;
  std::optional<std::string> content = read_log_file(recovery_.file);
  if (!content) return;
  HeadScan scan = scan_heads(*content);
  if (!scan.found && scan.starts_with_rotation && !recovery_.rotation_interrupted) {
    std::optional<std::string> previous = read_log_file(path_ + ".1");
    HeadScan before = previous ? scan_heads(*previous) : HeadScan{};
    if (before.found) {
      last_head_sha256_ = before.last_head_sha256;
      file_base_line_ = before.file_base_line + before.lines;
    }
  } else if (scan.found) {
    last_head_sha256_ = scan.last_head_sha256;
    file_base_line_ = scan.file_base_line;
  }
  file_records_ = scan.records;
  file_runs_ = scan.runs;
  lines_since_head_ = scan.lines_since_head;
}

bool AuditLog::head_due() const {
  return signing_.enabled() && lines_since_head_ > 0 &&
         std::chrono::steady_clock::now() - last_head_time_ >=
             std::chrono::seconds(signing_.interval_seconds);
}

void AuditLog::append_head(std::string_view reason, uint64_t open_runs) {
  if (!signing_.enabled()) return;
  AuditHeadPosition p;
  p.reason = reason;
  p.file = base_name(path_);
  p.line = lines_ + buffered_lines_ + 1;
  p.log_line = file_base_line_ + p.line;
  p.records = file_records_;
  p.runs = file_runs_;
  p.open_runs = open_runs;
  p.prev_head = last_head_sha256_;
  std::string line = signed_head_line(signing_, p, prev_hash_);
  prev_hash_ = line_hash(line);
  last_head_sha256_ = prev_hash_;
  buffer_ += line;
  buffer_ += '\n';
  ++buffered_lines_;
  buffered_durable_ = true;
  lines_since_head_ = 0;
  last_head_time_ = std::chrono::steady_clock::now();
}

void AuditLog::append(std::string_view object_line, bool durable, AuditRecordKind kind) {
  if (kind != AuditRecordKind::collector) ++file_records_;
  if (kind == AuditRecordKind::run_start) ++file_runs_;
  ++lines_since_head_;
  std::string line = chain_line(prev_hash_, object_line);
  prev_hash_ = line_hash(line);
  buffer_ += line;
  buffer_ += '\n';
  ++buffered_lines_;
  buffered_durable_ = buffered_durable_ || durable;
}

void AuditLog::write_head() {
  AuditHead head{lines_, prev_hash_};
  std::string text = head.encode(base_name(path_));
  if (::pwrite(head_fd_.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    throw_errno("audit log: write " + path_ + ".head");
  }
}

void AuditLog::commit() {
  if (buffer_.empty()) return;
  HeadLock lock(head_fd_.get());
  if (!write_all(fd_.get(), buffer_.data(), buffer_.size()))
    throw_errno("audit log: write " + path_);
  lines_ += buffered_lines_;
  bytes_ += buffer_.size();
  if (buffered_durable_) {
    if (::fdatasync(fd_.get()) != 0) throw_errno("audit log: fdatasync " + path_);
    ++fsyncs_;
  } else {
    unsynced_ = true;
  }
  write_head();
  buffer_.clear();
  buffered_lines_ = 0;
  buffered_durable_ = false;
}

void AuditLog::sync() {
  if (!unsynced_) return;
  if (::fdatasync(fd_.get()) != 0) throw_errno("audit log: fdatasync " + path_);
  ::fdatasync(head_fd_.get());
  ++fsyncs_;
  unsynced_ = false;
}

void AuditLog::sync_directory() {
  std::string dir = directory_of(path_);
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d || ::fsync(d.get()) != 0) throw_errno("audit log: fsync directory " + dir);
}

std::string AuditLog::rotation_record(const std::string& previous_file, uint64_t previous_lines,
                                      const nlohmann::json& open_runs,
                                      const nlohmann::json& pruned) {
  nlohmann::ordered_json r;
  r["ts"] = rfc3339_now();
  r["type"] = "collector";
  r["event"] = "rotated";
  r["previous_file"] = previous_file;
  r["previous_lines"] = previous_lines;
  r["open_runs"] = open_runs;
  if (!pruned.empty()) r["pruned"] = pruned;
  return encode_event(r);
}

void AuditLog::rotate(const nlohmann::json& open_runs) {
  commit();
  if (signing_.enabled()) {
    append_head("rotation", open_runs.size());
    commit();
  }
  sync();
  if (::fdatasync(fd_.get()) != 0) throw_errno("audit log: fdatasync " + path_);
  HeadLock lock(head_fd_.get());
  int highest = 0;
  while (exists(path_ + "." + std::to_string(highest + 1)))
    ++highest;
  for (int n = highest; n >= 1; --n) {
    std::string from = path_ + "." + std::to_string(n), to = path_ + "." + std::to_string(n + 1);
    if (::rename(from.c_str(), to.c_str()) != 0)
      throw_errno("audit log: rotate " + from + " to " + to);
  }
  std::string first = path_ + ".1";
  if (::rename(path_.c_str(), first.c_str()) != 0)
    throw_errno("audit log: rotate " + path_ + " to " + first);
  nlohmann::json pruned = prune(highest + 1);
  uint64_t previous_lines = lines_;
  open_file(true);
  lines_ = 0;
  bytes_ = 0;
  file_base_line_ += previous_lines;
  file_records_ = 0;
  file_runs_ = 0;
  append(rotation_record(base_name(first), previous_lines, open_runs, pruned), true,
         AuditRecordKind::collector);
  if (!write_all(fd_.get(), buffer_.data(), buffer_.size()))
    throw_errno("audit log: write " + path_);
  lines_ = buffered_lines_;
  bytes_ = buffer_.size();
  buffer_.clear();
  buffered_lines_ = 0;
  buffered_durable_ = false;
  if (::fdatasync(fd_.get()) != 0) throw_errno("audit log: fdatasync " + path_);
  ++fsyncs_;
  write_head();
  ::fdatasync(head_fd_.get());
  sync_directory();
  ++rotations_;
}

// The newest rotated file always stays; from FILE.2 on, a file goes once the count or the
// total size would pass the retention, and every older one with it. Each pruned file is named
// with its line count and the SHA-256 of its last line, which the next kept file chains to.
nlohmann::json AuditLog::prune(int highest) {
  nlohmann::json pruned = nlohmann::json::array();
  if (!retention_.limited()) return pruned;
  uint64_t total = file_size(path_ + ".1");
  bool pruning = false;
  for (int n = 2; n <= highest; ++n) {
    std::string file = path_ + "." + std::to_string(n);
    total += file_size(file);
    pruning = pruning || (retention_.files && static_cast<uint64_t>(n) > retention_.files) ||
              (retention_.bytes && total > retention_.bytes);
    if (!pruning) continue;
    std::optional<std::string> content = read_log_file(file);
    if (!content) continue;
    uint64_t lines = 0;
    std::string_view last;
    std::string_view rest = *content;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) break;
      last = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
      ++lines;
    }
    pruned.push_back({{"file", base_name(file)},
                      {"lines", lines},
                      {"last_sha256", lines ? line_hash(last) : std::string(kGenesisHash)}});
    if (::unlink(file.c_str()) != 0) throw_errno("audit log: prune " + file);
    ++pruned_files_;
  }
  return pruned;
}

void AuditLog::begin_rotated_file(const nlohmann::json& open_runs) {
  file_base_line_ += recovery_.lines;
  file_records_ = 0;
  file_runs_ = 0;
  append(rotation_record(base_name(path_) + ".1", recovery_.lines, open_runs), true,
         AuditRecordKind::collector);
  commit();
  sync_directory();
  recovery_.rotation_interrupted = false;
}

}  // namespace launcher
