#include "launcher/events/audit_signing.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "launcher/base/error.h"
#include "launcher/base/fd.h"
#include "launcher/events/audit_timeline.h"
#include "launcher/events/event.h"
#include "policy/digest.h"

namespace launcher {
namespace {

using EvpKeyPtr = std::shared_ptr<EVP_PKEY>;

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t padding = text.ends_with("==") ? 2 : text.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

// The file's bytes; `private_key` refuses a file that group or others may read. The mode is
// the opened file's (a Kubernetes Secret's files are symbolic links into its ..data).
std::string read_key_file(const std::string& path, bool private_key) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("key " + path + ": open");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("key " + path + ": stat");
  if (!S_ISREG(st.st_mode)) throw LaunchError("key " + path + ": not a regular file");
  if (private_key && (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH))) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw LaunchError("--sign-key " + path + ": mode " + mode +
                      " lets group or others read it; a private key must be 0600 or 0400 "
                      "(chmod 0600 " +
                      path + ")");
  }
  std::string content;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("key " + path + ": read");
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > (1 << 16)) throw LaunchError("key " + path + ": larger than 64KiB");
  }
  return content;
}

EvpKeyPtr parse_pem(const std::string& text, bool want_private) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free);
  if (!bio) return nullptr;
  EVP_PKEY* key = want_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                               : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  return EvpKeyPtr(key, EVP_PKEY_free);
}

void require_ed25519(const EvpKeyPtr& key, const std::string& what) {
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    throw LaunchError(what + ": not an Ed25519 key (a " +
                      std::string(OBJ_nid2sn(EVP_PKEY_id(key.get()))) +
                      " key); create one with `openssl genpkey -algorithm ed25519`");
  }
}

std::string text_of(const nlohmann::json& r, const char* key) {
  auto it = r.find(key);
  return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<uint64_t> number_of(const nlohmann::json& r, const char* key) {
  auto it = r.find(key);
  if (it == r.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

}  // namespace

AuditKey::AuditKey(std::shared_ptr<evp_pkey_st> key, bool has_private)
    : key_(std::move(key)), has_private_(has_private) {
  size_t len = 32;
  raw_public_.assign(len, '\0');
  if (EVP_PKEY_get_raw_public_key(key_.get(), reinterpret_cast<unsigned char*>(raw_public_.data()),
                                  &len) != 1) {
    throw LaunchError("Ed25519 key: cannot read its public key");
  }
  raw_public_.resize(len);
  id_ = policy::sha256_hex(raw_public_);
}

AuditKey AuditKey::load_private(const std::string& path) {
  std::string text = read_key_file(path, true);
  EvpKeyPtr key = parse_pem(text, true);
  if (!key) {
    throw LaunchError("--sign-key " + path +
                      ": not a PEM private key (create one with `openssl genpkey -algorithm "
                      "ed25519 -out " +
                      path + "`)");
  }
  require_ed25519(key, "--sign-key " + path);
  return AuditKey(key, true);
}

AuditKey AuditKey::load_public(const std::string& path) {
  std::string text = read_key_file(path, false);
  EvpKeyPtr key = parse_pem(text, false);
  if (!key) key = parse_pem(text, true);
  if (!key) {
    throw LaunchError("--key " + path +
                      ": not a PEM public key (`openssl pkey -in KEY -pubout` writes one)");
  }
  require_ed25519(key, "--key " + path);
  return AuditKey(key, false);
}

std::optional<AuditKey> AuditKey::from_raw_public(std::string_view raw) {
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  if (!key) return std::nullopt;
  return AuditKey(EvpKeyPtr(key, EVP_PKEY_free), false);
}

std::string AuditKey::public_key_base64() const {
  return base64_encode(raw_public_);
}

std::string AuditKey::sign(std::string_view message) const {
  if (!has_private_) throw LaunchError("audit head: signing needs a private key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char sig[64];
  size_t len = sizeof sig;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    throw LaunchError("audit head: Ed25519 signing failed");
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(sig), len));
}

bool AuditKey::verify(std::string_view message, std::string_view signature_base64) const {
  std::optional<std::string> sig = base64_decode(signature_base64);
  if (!sig || sig->size() != 64) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                          sig->size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

std::string read_machine_id() {
  UniqueFd fd(::open("/etc/machine-id", O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  char buf[128];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string id(buf, static_cast<size_t>(n));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' '))
    id.pop_back();
  return id;
}

std::string signed_head_line(const AuditSigning& signing, const AuditHeadPosition& p,
                             std::string_view tip) {
  nlohmann::ordered_json h;
  h["ts"] = rfc3339_now();
  h["type"] = "head";
  h["reason"] = p.reason;
  h["file"] = p.file;
  h["line"] = p.line;
  h["log_line"] = p.log_line;
  h["records"] = p.records;
  h["runs"] = p.runs;
  h["open_runs"] = p.open_runs;
  h["prev_head"] = p.prev_head;
  h["host"] = {{"hostname", signing.hostname}, {"machine_id", signing.machine_id}};
  h["interval_s"] = signing.interval_seconds;
  h["key_id"] = signing.key->id();
  h["public_key"] = signing.key->public_key_base64();
  if (!signing.next_key_id.empty()) h["next_key_id"] = signing.next_key_id;
  std::string line =
      chain_line(tip, h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  std::string signature = signing.key->sign(std::string(kHeadSignatureDomain) + line);
  line.pop_back();
  return line + ",\"sig\":\"" + signature + "\"}";
}

std::optional<std::string> head_signed_bytes(std::string_view line, std::string& signature) {
  static constexpr std::string_view kSig = ",\"sig\":\"";
  size_t at = line.rfind(kSig);
  if (at == std::string_view::npos || !line.ends_with("\"}")) return std::nullopt;
  size_t start = at + kSig.size();
  signature = std::string(line.substr(start, line.size() - 2 - start));
  if (signature.find('"') != std::string::npos) return std::nullopt;
  return std::string(kHeadSignatureDomain) + std::string(line.substr(0, at)) + "}";
}

namespace {

// verify_audit_heads's walk over the lines of every file, oldest first.
class HeadVerifier {
 public:
  HeadVerifier(const std::vector<AuditInput>& files, const std::vector<AuditKey>& keys,
               std::chrono::system_clock::time_point now)
      : files_(files), now_(now) {
    for (const AuditKey& k : keys)
      given_.emplace(k.id(), k);
    out_.keys_given = !keys.empty();
  }

  AuditHeadReport verify() {
    for (size_t f = 0; f < files_.size(); ++f)
      check_file(f);
    check_tail();
    return std::move(out_);
  }

 private:
  struct FileWalk {
    size_t file = 0;
    uint64_t number = 0;  // lines so far
    uint64_t records = 0;
    uint64_t runs = 0;
    bool last_is_rotation_head = false;
  };

  void problem(size_t file, uint64_t line, std::string why) {
    out_.problems.push_back({file, line, std::move(why)});
  }
  void check_file(size_t f);
  void on_line(FileWalk& w, std::string_view bytes);
  void check_head(const FileWalk& w, std::string_view bytes, const nlohmann::json& r);
  bool check_signature(const FileWalk& w, std::string_view bytes, const nlohmann::json& r);
  void check_position(const FileWalk& w, const nlohmann::json& r);
  void check_previous_head(const FileWalk& w, const nlohmann::json& r);
  void check_tail();

  const std::vector<AuditInput>& files_;
  std::chrono::system_clock::time_point now_;
  std::map<std::string, AuditKey> given_;
  std::set<std::string> announced_;  // next_key_id of trusted heads
  AuditHeadReport out_;
  bool log_starts_here_ = false;  // the first line chains to 000…
  std::optional<std::string> last_head_sha256_;
  std::optional<uint64_t> file_base_;  // log_line of the line before the file's first
  uint64_t last_head_interval_ = 0;
};

void HeadVerifier::check_file(size_t f) {
  FileWalk w;
  w.file = f;
  std::string_view rest = files_[f].content;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) break;  // a fragment: verify_audit reports it
    on_line(w, rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  bool last_file = f + 1 == files_.size();
  if (!last_file && out_.heads > 0 && !w.last_is_rotation_head) {
    problem(f, w.number,
            "the file does not end with its rotation's signed head: lines were cut from its "
            "end, or it was rotated by a collector without --sign-key");
  }
  file_base_ = file_base_ ? std::optional<uint64_t>(*file_base_ + w.number) : std::nullopt;
}

void HeadVerifier::on_line(FileWalk& w, std::string_view bytes) {
  ++w.number;
  w.last_is_rotation_head = false;
  nlohmann::json r = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (!r.is_object()) return;
  if (w.file == 0 && w.number == 1) log_starts_here_ = text_of(r, "prev") == kGenesisHash;
  std::string type = text_of(r, "type");
  if (type == "head") {
    check_head(w, bytes, r);
    w.last_is_rotation_head = text_of(r, "reason") == "rotation";
    out_.uncovered_lines = 0;
    out_.uncovered_since.clear();
    return;
  }
  if (out_.uncovered_lines++ == 0) out_.uncovered_since = text_of(r, "ts");
  if (type != "collector" && r.contains("run") && r["run"].is_string() && number_of(r, "seq")) {
    ++w.records;
    if (type == "start") ++w.runs;
  }
}

void HeadVerifier::check_head(const FileWalk& w, std::string_view bytes, const nlohmann::json& r) {
  ++out_.heads;
  bool trusted = check_signature(w, bytes, r);
  if (trusted && !text_of(r, "next_key_id").empty()) announced_.insert(text_of(r, "next_key_id"));
  check_position(w, r);
  check_previous_head(w, r);
  last_head_sha256_ = line_hash(bytes);
  out_.last_head_ts = text_of(r, "ts");
  out_.ends_with_shutdown_head = text_of(r, "reason") == "shutdown";
  last_head_interval_ = number_of(r, "interval_s").value_or(0);
}

// The head's key is given, or announced by a trusted head; its signature verifies. Without
// --key, the key the head carries is used: it shows the head is whole, not who wrote it.
bool HeadVerifier::check_signature(const FileWalk& w, std::string_view bytes,
                                   const nlohmann::json& r) {
  std::string key_id = text_of(r, "key_id");
  std::optional<std::string> raw = base64_decode(text_of(r, "public_key"));
  std::optional<AuditKey> carried = raw ? AuditKey::from_raw_public(*raw) : std::nullopt;
  if (!carried || carried->id() != key_id) {
    problem(w.file, w.number,
            "head: its key_id is not the SHA-256 of the public key it carries: the head was "
            "forged or altered");
    return false;
  }
  out_.signing_keys.insert(key_id);
  const AuditKey* key = nullptr;
  auto given = given_.find(key_id);
  if (given != given_.end()) {
    key = &given->second;
  } else if (!out_.keys_given || announced_.count(key_id)) {
    key = &*carried;
  } else {
    problem(w.file, w.number,
            "head signed by key " + key_id.substr(0, 12) +
                "…, which is not a given key (--key) nor announced as next_key_id by a head "
                "signed with one: the log was rewritten by someone without the key");
    return false;
  }
  std::string signature;
  std::optional<std::string> signed_bytes = head_signed_bytes(bytes, signature);
  if (!signed_bytes || !key->verify(*signed_bytes, signature)) {
    problem(w.file, w.number,
            "head: the signature does not verify: this head or a line before it was altered");
    return false;
  }
  return out_.keys_given;
}

// Its line in the file and in the log, and the records and runs before it in the file.
void HeadVerifier::check_position(const FileWalk& w, const nlohmann::json& r) {
  std::optional<uint64_t> line = number_of(r, "line"), log_line = number_of(r, "log_line");
  if (!line || !log_line || *log_line < *line) {
    problem(w.file, w.number, "head without a valid line and log_line");
    return;
  }
  if (*line != w.number) {
    problem(w.file, w.number,
            "head signed as line " + std::to_string(*line) + " of its file, found at line " +
                std::to_string(w.number) + ": lines before it were removed or inserted");
  }
  uint64_t base = *log_line - *line;
  if (file_base_ && *file_base_ != base) {
    problem(w.file, w.number,
            "head signed as line " + std::to_string(*log_line) +
                " of the log, but the files "
                "given before it end at line " +
                std::to_string(*file_base_) + ": a file is missing between them, or was cut");
  }
  file_base_ = base;
  uint64_t records = number_of(r, "records").value_or(0), runs = number_of(r, "runs").value_or(0);
  if (records != w.records || runs != w.runs) {
    problem(w.file, w.number,
            "head counts " + std::to_string(records) + " records and " + std::to_string(runs) +
                " runs before it in the file; the file has " + std::to_string(w.records) + " and " +
                std::to_string(w.runs) + ": records were removed or added");
  }
}

void HeadVerifier::check_previous_head(const FileWalk& w, const nlohmann::json& r) {
  std::string prev_head = text_of(r, "prev_head");
  if (last_head_sha256_) {
    if (prev_head != *last_head_sha256_) {
      problem(w.file, w.number,
              "head: its prev_head is not the SHA-256 of the head before it: a head was removed "
              "or replaced");
    }
  } else if (log_starts_here_ && prev_head != kGenesisHash) {
    problem(w.file, w.number,
            "the first head names a previous head (prev_head), but the log starts in the first "
            "file given: a head was removed");
  } else if (!log_starts_here_ && prev_head != kGenesisHash) {
    out_.notes.push_back("the first head chains to a head in an earlier file that was not given");
  }
}

// What follows the last head: lines no signature covers yet, and a log that stops without
// its shutdown head.
void HeadVerifier::check_tail() {
  if (out_.heads == 0) {
    if (out_.keys_given && !files_.empty()) {
      problem(files_.size() - 1, 1,
              "no signed head in the files: they were not written by `collect --sign-key`, or "
              "were rewritten without the key");
    }
    return;
  }
  if (!out_.keys_given) {
    out_.notes.push_back(
        "signatures checked with the keys the heads carry, not with a given key (--key): they "
        "show the heads are whole, not who wrote them");
  }
  if (out_.ends_with_shutdown_head) return;
  auto ts = parse_rfc3339(out_.last_head_ts);
  if (!ts) return;
  auto last = std::chrono::system_clock::time_point(std::chrono::seconds(ts->first));
  auto interval = std::chrono::seconds(last_head_interval_ ? last_head_interval_ : 300);
  if (now_ - last > interval + std::chrono::seconds(2)) out_.cut_after = out_.last_head_ts;
}

}  // namespace

AuditHeadReport verify_audit_heads(const std::vector<AuditInput>& files,
                                   const std::vector<AuditKey>& keys,
                                   std::chrono::system_clock::time_point now) {
  return HeadVerifier(files, keys, now).verify();
}

std::vector<AuditKey> load_public_keys(const std::vector<std::string>& paths, int error_exit_code) {
  std::vector<AuditKey> keys;
  for (const std::string& path : paths) {
    try {
      keys.push_back(AuditKey::load_public(path));
    } catch (const LaunchError& e) {
      throw LaunchError(e.what(), error_exit_code);
    }
  }
  return keys;
}

void merge_head_problems(AuditVerification& v, const AuditHeadReport& heads) {
  v.problems.insert(v.problems.end(), heads.problems.begin(), heads.problems.end());
  std::stable_sort(v.problems.begin(), v.problems.end(),
                   [](const AuditProblem& a, const AuditProblem& b) {
                     return a.file != b.file ? a.file < b.file : a.line < b.line;
                   });
}

bool heads_closed(const AuditHeadReport& heads) {
  return heads.heads == 0 ? !heads.keys_given : heads.ends_with_shutdown_head;
}

std::string head_report_text(const AuditHeadReport& h) {
  if (h.heads == 0) return {};
  std::string out =
      "signed: " + std::to_string(h.heads) + (h.heads == 1 ? " head" : " heads") + " by key";
  if (h.signing_keys.size() > 1) out += "s";
  for (const std::string& id : h.signing_keys)
    out += " " + id.substr(0, 16);
  out += h.keys_given ? " (checked against the keys given)\n"
                      : " (not checked against a key: give --key PUB.pem)\n";
  if (h.uncovered_lines > 0) {
    out += "not covered by a signed head: " + std::to_string(h.uncovered_lines) +
           " line(s) after the last head (" + h.last_head_ts + "), from " + h.uncovered_since +
           "\n";
  }
  if (!h.cut_after.empty()) {
    out += "no shutdown head, and the last signed head (" + h.cut_after +
           ") is older than the signing interval: records may have been cut after " + h.cut_after +
           " (or the collector is running idle, or crashed)\n";
  } else if (!h.ends_with_shutdown_head) {
    out += "no shutdown head after the last signed head (" + h.last_head_ts +
           "): the collector is still running (or records were cut after it)\n";
  }
  for (const std::string& note : h.notes)
    out += "note: " + note + "\n";
  return out;
}

nlohmann::json head_report_json(const AuditHeadReport& h) {
  nlohmann::json out = {{"heads", h.heads},
                        {"signing_keys", h.signing_keys},
                        {"keys_given", h.keys_given},
                        {"uncovered_lines", h.uncovered_lines},
                        {"ends_with_shutdown_head", h.ends_with_shutdown_head},
                        {"notes", h.notes}};
  if (!h.last_head_ts.empty()) out["last_head"] = h.last_head_ts;
  if (!h.uncovered_since.empty()) out["uncovered_since"] = h.uncovered_since;
  if (!h.cut_after.empty()) out["records_may_be_cut_after"] = h.cut_after;
  return out;
}

}  // namespace launcher
