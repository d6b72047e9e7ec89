// Signed audit heads (collect --sign-key, audit verify --key), with keys generated here: a log
// written with heads verifies with its key across rotations; a chain rewritten without the key
// fails; a cut tail is reported; a pruned first file is reported as pruned; heads across a key
// rotation verify; keys that are not Ed25519 or that others may read are refused.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "launcher/base/error.h"
#include "launcher/events/audit_chain.h"
#include "launcher/events/audit_log.h"
#include "launcher/events/audit_nodes.h"
#include "launcher/events/audit_signing.h"
#include "launcher/events/event.h"

using namespace launcher;

namespace {

const auto kSoon = std::chrono::system_clock::now();  // no head is older than the interval
const auto kMuchLater = kSoon + std::chrono::hours(24);

class TempDirectory {
 public:
  TempDirectory() {
    char tmpl[] = "/tmp/audit-signing-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDirectory() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A new key of `type` (EVP_PKEY_ED25519, EVP_PKEY_EC...) written as PEM: the private key to
// `dir/name.pem` (mode 0600) and the public key to `dir/name.pub.pem`.
std::string generate_key(const TempDirectory& dir, const std::string& name,
                         int type = EVP_PKEY_ED25519) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  EXPECT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  if (type == EVP_PKEY_EC) EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1);
  EXPECT_EQ(EVP_PKEY_keygen(ctx.get(), &raw), 1);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(raw, EVP_PKEY_free);
  std::string path = dir.file(name + ".pem");
  FILE* f = std::fopen(path.c_str(), "w");
  PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  ::chmod(path.c_str(), 0600);
  f = std::fopen(dir.file(name + ".pub.pem").c_str(), "w");
  PEM_write_PUBKEY(f, key.get());
  std::fclose(f);
  return path;
}

AuditSigning signing_with(const std::string& key_path, const std::string& next_public = "",
                          const std::string& hostname = "node-a") {
  AuditSigning s;
  s.key = std::make_shared<const AuditKey>(AuditKey::load_private(key_path));
  if (!next_public.empty()) s.next_key_id = AuditKey::load_public(next_public).id();
  s.hostname = hostname;
  s.machine_id = "0123456789abcdef0123456789abcdef";
  s.interval_seconds = 300;
  return s;
}

std::string event(const std::string& run, uint64_t seq, const std::string& type) {
  nlohmann::ordered_json e;
  e["ts"] = rfc3339_now();
  e["run"] = run;
  e["seq"] = seq;
  e["type"] = type;
  e["manifest"] = {{"name", "agent"}};
  return encode_event(e);
}

std::string collector_record(const std::string& what) {
  nlohmann::ordered_json e;
  e["ts"] = rfc3339_now();
  e["type"] = "collector";
  e["event"] = what;
  return encode_event(e);
}

// A collector's session on the log at `path`: started, a start head, a run of `events` records
// (an interval head in the middle), then, with `stop`, stopped and the shutdown head.
// Returns the run's id.
std::string write_session(const std::string& path, const AuditSigning& signing, uint64_t events,
                          bool stop = true, uint64_t rotate_bytes = 0,
                          AuditRetention retention = {}) {
  static char session = 'a';
  std::string run(32, session++);
  AuditLog log(path, rotate_bytes, retention, signing);
  log.append(collector_record("started"), true, AuditRecordKind::collector);
  log.append_head("start", 0);
  log.commit();
  log.append(event(run, 0, "start"), true, AuditRecordKind::run_start);
  for (uint64_t seq = 1; seq < events; ++seq) {
    log.append(event(run, seq, seq + 1 == events ? "exit" : "open"), false);
    if (seq == events / 2) log.append_head("interval", 1);
    log.commit();
    nlohmann::json open = {
        {run, {{"token_sha256", ""}, {"next_seq", seq + 1}, {"manifest", "agent"}}}};
    if (log.needs_rotation()) log.rotate(seq + 1 == events ? nlohmann::json::object() : open);
  }
  if (stop) {
    log.append(collector_record("stopped"), true, AuditRecordKind::collector);
    log.append_head("shutdown", 0);
    log.commit();
  }
  return run;
}

std::vector<AuditInput> inputs_of(const std::vector<std::string>& files) {
  std::vector<AuditInput> in;
  for (const std::string& f : files)
    in.push_back({f, slurp(f), std::nullopt});
  return in;
}

std::string describe(const std::vector<AuditProblem>& problems) {
  std::string s;
  for (const auto& p : problems)
    s += "file " + std::to_string(p.file) + " line " + std::to_string(p.line) + ": " + p.why + "\n";
  return s.empty() ? "(no problems)" : s;
}

bool mentions(const std::vector<AuditProblem>& problems, const std::string& word) {
  for (const auto& p : problems)
    if (p.why.find(word) != std::string::npos) return true;
  return false;
}

std::vector<std::string> lines_of(const std::string& content) {
  std::vector<std::string> out;
  std::stringstream ss(content);
  std::string l;
  while (std::getline(ss, l))
    out.push_back(l);
  return out;
}

// The lines rechained from the first: what someone who can write the file but has not the key
// can do.
std::string rechain(const std::vector<std::string>& lines) {
  std::string prev(kGenesisHash), out;
  for (const std::string& l : lines) {
    nlohmann::ordered_json r = nlohmann::ordered_json::parse(l);
    r.erase("prev");
    std::string line = chain_line(prev, r.dump());
    prev = line_hash(line);
    out += line + "\n";
  }
  return out;
}

}  // namespace

TEST(AuditSigning, ASignedLogVerifiesWithItsKeyAcrossRotations) {
  TempDirectory dir;
  std::string key = generate_key(dir, "collector");
  std::string log = dir.file("audit.log");
  write_session(log, signing_with(key), 60, true, 4096);
  ASSERT_TRUE(std::filesystem::exists(log + ".1"));
  std::vector<std::string> files;
  for (int n = 9; n >= 1; --n)
    if (std::filesystem::exists(log + "." + std::to_string(n)))
      files.push_back(log + "." + std::to_string(n));
  files.push_back(log);
  auto in = inputs_of(files);
  AuditVerification chain = verify_audit(in);
  EXPECT_TRUE(chain.ok()) << describe(chain.problems);
  auto keys = load_public_keys({dir.file("collector.pub.pem")}, 2);
  AuditHeadReport heads = verify_audit_heads(in, keys, kMuchLater);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
  EXPECT_GE(heads.heads, 3u + files.size() - 1);  // start, interval, shutdown, one per rotation
  EXPECT_TRUE(heads.ends_with_shutdown_head);
  EXPECT_EQ(heads.uncovered_lines, 0u);
  EXPECT_TRUE(heads.cut_after.empty()) << heads.cut_after;
  EXPECT_EQ(heads.signing_keys.size(), 1u);
  // Every rotated file ends with its rotation head; the head names the host.
  auto last = nlohmann::json::parse(lines_of(slurp(files[0])).back());
  EXPECT_EQ(last["type"], "head");
  EXPECT_EQ(last["reason"], "rotation");
  EXPECT_EQ(last["host"]["hostname"], "node-a");
  EXPECT_EQ(last["key_id"], keys[0].id());
}

TEST(AuditSigning, AChainRewrittenWithoutTheKeyFails) {
  TempDirectory dir;
  std::string key = generate_key(dir, "collector");
  std::string forger = generate_key(dir, "forger");
  std::string log = dir.file("audit.log");
  write_session(log, signing_with(key), 10);
  auto keys = load_public_keys({dir.file("collector.pub.pem")}, 2);
  std::vector<std::string> lines = lines_of(slurp(log));
  // One record changed and the whole chain rewritten from the first line: the chain is intact,
  // the signature of the next head is not.
  std::string path = lines[4].substr(0, lines[4].find("\"open\"")) + "\"deny\"" +
                     lines[4].substr(lines[4].find("\"open\"") + 6);
  lines[4] = path;
  auto rewritten = inputs_of({});
  rewritten.push_back({"audit.log", rechain(lines), std::nullopt});
  EXPECT_TRUE(verify_audit(rewritten).ok()) << describe(verify_audit(rewritten).problems);
  AuditHeadReport heads = verify_audit_heads(rewritten, keys, kSoon);
  EXPECT_FALSE(heads.ok());
  EXPECT_TRUE(mentions(heads.problems, "signature does not verify")) << describe(heads.problems);
  // ... and with every head removed: no signed head at all.
  std::vector<std::string> without_heads;
  for (const std::string& l : lines_of(slurp(log)))
    if (l.find("\"type\":\"head\"") == std::string::npos) without_heads.push_back(l);
  std::vector<AuditInput> stripped = {{"audit.log", rechain(without_heads), std::nullopt}};
  heads = verify_audit_heads(stripped, keys, kSoon);
  EXPECT_TRUE(mentions(heads.problems, "no signed head")) << describe(heads.problems);
  // ... and re-signed with another key: not the given key.
  std::string forged_log = dir.file("forged.log");
  write_session(forged_log, signing_with(forger), 10);
  heads = verify_audit_heads(inputs_of({forged_log}), keys, kSoon);
  EXPECT_TRUE(mentions(heads.problems, "not a given key")) << describe(heads.problems);
  // Without --key the forged log's heads are whole: that is all they show.
  heads = verify_audit_heads(inputs_of({forged_log}), {}, kSoon);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
  EXPECT_FALSE(heads.notes.empty());
}

TEST(AuditSigning, ACutTailIsReported) {
  TempDirectory dir;
  std::string key = generate_key(dir, "collector");
  std::string log = dir.file("audit.log");
  write_session(log, signing_with(key), 20);
  auto keys = load_public_keys({dir.file("collector.pub.pem")}, 2);
  std::vector<std::string> lines = lines_of(slurp(log));
  // Cut right after the interval head: the shutdown head and the records before it are gone.
  size_t interval_head = 0;
  for (size_t i = 0; i < lines.size(); ++i)
    if (lines[i].find("\"reason\":\"interval\"") != std::string::npos) interval_head = i;
  ASSERT_GT(interval_head, 0u);
  std::vector<std::string> kept(lines.begin(), lines.begin() + interval_head + 3);
  std::string content;
  for (const std::string& l : kept)
    content += l + "\n";
  std::vector<AuditInput> cut = {{"audit.log", content, std::nullopt}};
  AuditHeadReport heads = verify_audit_heads(cut, keys, kMuchLater);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
  EXPECT_FALSE(heads.ends_with_shutdown_head);
  EXPECT_EQ(heads.uncovered_lines, 2u);
  EXPECT_FALSE(heads.cut_after.empty());
  EXPECT_FALSE(heads_closed(heads));
  EXPECT_NE(head_report_text(heads).find("records may have been cut after"), std::string::npos)
      << head_report_text(heads);
  // Within the signing interval the collector may just not have signed yet.
  EXPECT_TRUE(verify_audit_heads(cut, keys, kSoon).cut_after.empty());
}

TEST(AuditSigning, APrunedFirstFileIsReportedAsPrunedNotAsTampering) {
  TempDirectory dir;
  std::string key = generate_key(dir, "collector");
  std::string log = dir.file("audit.log");
  write_session(log, signing_with(key), 120, true, 4096, {1, 0});
  ASSERT_TRUE(std::filesystem::exists(log + ".1"));
  ASSERT_FALSE(std::filesystem::exists(log + ".2"));
  auto in = inputs_of({log + ".1", log});
  AuditVerification chain = verify_audit(in);
  EXPECT_TRUE(chain.ok()) << describe(chain.problems);
  EXPECT_FALSE(chain.pruned_predecessor.empty());
  AuditHeadReport heads =
      verify_audit_heads(in, load_public_keys({dir.file("collector.pub.pem")}, 2), kMuchLater);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
  EXPECT_TRUE(heads.ends_with_shutdown_head);
}

TEST(AuditSigning, AMissingMiddleFileIsFound) {
  TempDirectory dir;
  std::string key = generate_key(dir, "collector");
  std::string log = dir.file("audit.log");
  write_session(log, signing_with(key), 120, true, 4096);
  ASSERT_TRUE(std::filesystem::exists(log + ".2"));
  AuditHeadReport heads =
      verify_audit_heads(inputs_of({log + ".2", log}),
                         load_public_keys({dir.file("collector.pub.pem")}, 2), kMuchLater);
  EXPECT_FALSE(heads.ok());
  EXPECT_TRUE(mentions(heads.problems, "prev_head")) << describe(heads.problems);
}

TEST(AuditSigning, HeadsAcrossAKeyRotationVerify) {
  TempDirectory dir;
  std::string old_key = generate_key(dir, "old");
  std::string new_key = generate_key(dir, "new");
  std::string log = dir.file("audit.log");
  // The old collector announces the next key; the restarted one signs with it.
  write_session(log, signing_with(old_key, dir.file("new.pub.pem")), 10);
  write_session(log, signing_with(new_key), 10);
  auto in = inputs_of({log});
  ASSERT_TRUE(verify_audit(in).ok()) << describe(verify_audit(in).problems);
  auto both = load_public_keys({dir.file("old.pub.pem"), dir.file("new.pub.pem")}, 2);
  AuditHeadReport heads = verify_audit_heads(in, both, kMuchLater);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
  EXPECT_EQ(heads.signing_keys.size(), 2u);
  // The old key alone: the new key was announced by a head it signed.
  heads = verify_audit_heads(in, load_public_keys({dir.file("old.pub.pem")}, 2), kMuchLater);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
  // Without the announcement, the old key alone does not vouch for the new one.
  std::string log2 = dir.file("audit2.log");
  write_session(log2, signing_with(old_key), 10);
  write_session(log2, signing_with(new_key), 10);
  heads = verify_audit_heads(inputs_of({log2}), load_public_keys({dir.file("old.pub.pem")}, 2),
                             kMuchLater);
  EXPECT_TRUE(mentions(heads.problems, "not a given key")) << describe(heads.problems);
  heads = verify_audit_heads(inputs_of({log2}), both, kMuchLater);
  EXPECT_TRUE(heads.ok()) << describe(heads.problems);
}

TEST(AuditSigning, KeysThatAreNotEd25519OrThatOthersMayReadAreRefused) {
  TempDirectory dir;
  std::string ec = generate_key(dir, "ec", EVP_PKEY_EC);
  try {
    AuditKey::load_private(ec);
    ADD_FAILURE() << "an EC key was accepted";
  } catch (const LaunchError& e) {
    EXPECT_NE(std::string(e.what()).find("not an Ed25519 key"), std::string::npos) << e.what();
  }
  std::string key = generate_key(dir, "collector");
  ::chmod(key.c_str(), 0640);
  try {
    AuditKey::load_private(key);
    ADD_FAILURE() << "a group-readable key was accepted";
  } catch (const LaunchError& e) {
    EXPECT_NE(std::string(e.what()).find("0640"), std::string::npos) << e.what();
  }
  EXPECT_THROW(AuditKey::load_private(dir.file("absent.pem")), LaunchError);
  ::chmod(key.c_str(), 0400);
  AuditKey k = AuditKey::load_private(key);
  EXPECT_EQ(k.id(), AuditKey::load_public(dir.file("collector.pub.pem")).id());
  EXPECT_EQ(k.id().size(), 64u);
  std::string sig = k.sign("message");
  EXPECT_TRUE(AuditKey::load_public(dir.file("collector.pub.pem")).verify("message", sig));
  EXPECT_FALSE(k.verify("massage", sig));
}

namespace {

// Runs the enclosure binary with `args`; its standard output and exit status.
std::pair<std::string, int> enclosure(const std::string& args) {
  std::string command = std::string(ENCLOSURE_BINARY) + " " + args + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

}  // namespace

TEST(AuditSigning, ThreeNodesLogsVerifyTogetherAndShowFindsARunInAny) {
  TempDirectory dir;
  std::string key = generate_key(dir, "collector");
  std::vector<std::string> files, runs;
  for (std::string node : {"node-a", "node-b", "node-c"}) {
    std::filesystem::create_directories(dir.file(node));
    std::string log = dir.file(node + "/audit.log");
    runs.push_back(write_session(log, signing_with(key, "", node), 60, true, 4096));
    for (int n = 9; n >= 1; --n)
      if (std::filesystem::exists(log + "." + std::to_string(n)))
        files.push_back(log + "." + std::to_string(n));
    files.push_back(log);
  }
  std::vector<AuditInput> in = inputs_of(files);
  std::vector<AuditNode> nodes = group_audit_files_by_node(in);
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[1].name.rfind("node-b (machine-id ", 0), 0u) << nodes[1].name;
  EXPECT_EQ(nodes[0].files.size() + nodes[1].files.size() + nodes[2].files.size(), files.size());
  std::string all;
  for (const std::string& f : files)
    all += " " + f;
  auto [out, status] = enclosure("audit verify --key " + dir.file("collector.pub.pem") + all);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("node node-c (machine-id"), std::string::npos) << out;
  EXPECT_NE(out.find("3 nodes: all intact"), std::string::npos) << out;
  // One node's log altered: that node, and only that one, is not intact.
  std::string b_log = dir.file("node-b/audit.log");
  std::string content = slurp(b_log);
  content[content.find("\"open\"") + 1] = 'O';
  std::ofstream(b_log, std::ios::trunc) << content;
  std::tie(out, status) =
      enclosure("audit verify --json --key " + dir.file("collector.pub.pem") + all);
  EXPECT_EQ(status, 1) << out;
  nlohmann::json verdict = nlohmann::json::parse(out);
  ASSERT_EQ(verdict["nodes"].size(), 3u) << out;
  EXPECT_TRUE(verdict["nodes"][0]["ok"]);
  EXPECT_FALSE(verdict["nodes"][1]["ok"]);
  EXPECT_TRUE(verdict["nodes"][2]["ok"]);
  EXPECT_FALSE(verdict["nodes"][2]["from"].get<std::string>().empty());
  // A run of node-c is found among all three nodes' files.
  std::tie(out, status) = enclosure("audit show --json --run " + runs[2] + all);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(runs[2]), std::string::npos) << out;
  EXPECT_EQ(out.find(runs[0]), std::string::npos) << out;
}
