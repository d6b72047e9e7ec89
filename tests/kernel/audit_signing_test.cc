// Signed audit heads end to end with the real binary: `enclosure collect --sign-key` writes heads
// at start, rotation and shutdown; `enclosure audit verify --key` accepts them across rotations
// and a key rotation, and fails a chain rewritten without the key and a log whose tail was cut.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "launcher/events/audit_chain.h"

extern char** environ;

using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `enclosure collect` with the given options, in the background; stop() sends SIGTERM.
class SigningCollector {
 public:
  SigningCollector(const TempDir& dir, const std::vector<std::string>& options) {
    static int counter = 0;
    socket_ = dir.file("collector.sock");
    err_ = dir.file("collector-" + std::to_string(++counter) + ".err");
    std::vector<std::string> argv = {
        harness::enclosure_binary(), "collect",     "--listen",
        "unix:" + socket_,           "--audit-log", dir.file("audit.log")};
    argv.insert(argv.end(), options.begin(), options.end());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> cargv;
    for (auto& a : argv)
      cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn enclosure collect failed");
    ready_ = harness::wait_until(
        [&] { return slurp(err_).find("listening on") != std::string::npos; }, 10000);
  }
  ~SigningCollector() {
    if (pid_ > 0) stop();
  }
  bool ready() const { return ready_; }
  std::string events_arg() const { return "unix:" + socket_; }
  std::string errors() const { return slurp(err_); }
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  std::string socket_, err_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// An Ed25519 key pair made with the openssl command: NAME.pem (0600) and NAME.pub.
std::string make_key(const TempDir& dir, const std::string& name) {
  std::string key = dir.file(name + ".pem");
  EXPECT_EQ(run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out", key}).exit_code, 0);
  ::chmod(key.c_str(), 0600);
  EXPECT_EQ(run_command({"openssl", "pkey", "-in", key, "-pubout", "-out", dir.file(name + ".pub")})
                .exit_code,
            0);
  return key;
}

void run_agents(const TempDir& dir, const SigningCollector& collector, int count) {
  for (int i = 0; i < count; ++i) {
    auto m = harness::base_manifest("signed", {"/usr/bin/python3"});
    auto r = run_enclosure(dir, m, harness::python_agent("R['i'] = 1\n"),
                           {.extra_args = {"--events", collector.events_arg()}});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
}

// The log's files, oldest first.
std::vector<std::string> log_files(const TempDir& dir) {
  std::vector<std::string> files;
  std::string log = dir.file("audit.log");
  for (int n = 20; n >= 1; --n)
    if (std::filesystem::exists(log + "." + std::to_string(n)))
      files.push_back(log + "." + std::to_string(n));
  files.push_back(log);
  return files;
}

RunResult verify(const std::vector<std::string>& files, const std::vector<std::string>& options) {
  std::vector<std::string> argv = {harness::enclosure_binary(), "audit", "verify"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.insert(argv.end(), files.begin(), files.end());
  return run_command(argv);
}

}  // namespace

TEST(AuditSigning, SignedHeadsVerifyAcrossRotationsAndARewriteWithoutTheKeyFails) {
  TempDir dir;
  std::string key = make_key(dir, "collector");
  SigningCollector collector(dir, {"--sign-key", key, "--rotate-size", "4KiB"});
  ASSERT_TRUE(collector.ready()) << collector.errors();
  run_agents(dir, collector, 4);
  ASSERT_EQ(collector.stop(), 0) << collector.errors();
  std::vector<std::string> files = log_files(dir);
  ASSERT_GE(files.size(), 2u) << "no rotation";
  auto v = verify(files, {"--key", dir.file("collector.pub"), "--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("signed: "), std::string::npos) << v.out;
  // A record of the last file changed and its chain rewritten from there: the chain is whole,
  // the heads' signatures are not.
  std::string last = slurp(files.back());
  std::vector<std::string> lines;
  std::stringstream ss(last);
  for (std::string l; std::getline(ss, l);)
    lines.push_back(l);
  std::string prev = nlohmann::json::parse(lines[0])["prev"];
  std::string rewritten;
  for (size_t i = 0; i < lines.size(); ++i) {
    nlohmann::ordered_json r = nlohmann::ordered_json::parse(lines[i]);
    r.erase("prev");
    if (i == 1) r["rewritten"] = true;
    std::string line = launcher::chain_line(prev, r.dump());
    prev = launcher::line_hash(line);
    rewritten += line + "\n";
  }
  std::ofstream(files.back(), std::ios::trunc) << rewritten;
  std::filesystem::remove(files.back() + ".head");
  auto with_key = verify(files, {"--key", dir.file("collector.pub")});
  EXPECT_EQ(with_key.exit_code, 1) << with_key.out;
  EXPECT_NE(with_key.out.find("signature does not verify"), std::string::npos) << with_key.out;
}

TEST(AuditSigning, ACutTailFailsRequireClosed) {
  TempDir dir;
  std::string key = make_key(dir, "collector");
  SigningCollector collector(dir, {"--sign-key", key});
  ASSERT_TRUE(collector.ready()) << collector.errors();
  run_agents(dir, collector, 1);
  ASSERT_EQ(collector.stop(), 0) << collector.errors();
  std::string log = dir.file("audit.log");
  std::string content = slurp(log);
  // Cut the collector's stopped record and its shutdown head, and the anchor with them.
  size_t end = content.rfind('\n', content.rfind('\n', content.size() - 2) - 1);
  std::ofstream(log, std::ios::trunc) << content.substr(0, end + 1);
  std::filesystem::remove(log + ".head");
  auto v = verify({log}, {"--key", dir.file("collector.pub"), "--require-closed"});
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_NE(v.out.find("no shutdown head"), std::string::npos) << v.out;
}

TEST(AuditSigning, HeadsAcrossAKeyRotationVerify) {
  TempDir dir;
  std::string old_key = make_key(dir, "old");
  std::string new_key = make_key(dir, "new");
  {
    SigningCollector collector(dir, {"--sign-key", old_key, "--next-key", dir.file("new.pub")});
    ASSERT_TRUE(collector.ready()) << collector.errors();
    run_agents(dir, collector, 1);
    ASSERT_EQ(collector.stop(), 0) << collector.errors();
  }
  {
    SigningCollector collector(dir, {"--sign-key", new_key});
    ASSERT_TRUE(collector.ready()) << collector.errors();
    run_agents(dir, collector, 1);
    ASSERT_EQ(collector.stop(), 0) << collector.errors();
  }
  std::string log = dir.file("audit.log");
  auto both = verify({log}, {"--key", dir.file("old.pub"), "--key", dir.file("new.pub")});
  EXPECT_EQ(both.exit_code, 0) << both.out;
  auto announced = verify({log}, {"--key", dir.file("old.pub")});
  EXPECT_EQ(announced.exit_code, 0) << announced.out;
  auto only_new = verify({log}, {"--key", dir.file("new.pub")});
  EXPECT_EQ(only_new.exit_code, 1) << only_new.out;
}

TEST(AuditSigning, AKeyOthersMayReadOrNotEd25519IsRefused) {
  TempDir dir;
  std::string key = make_key(dir, "collector");
  ::chmod(key.c_str(), 0644);
  auto r = run_command({harness::enclosure_binary(), "collect", "--listen", "unix:" + dir.file("s"),
                        "--audit-log", dir.file("audit.log"), "--sign-key", key});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("group or others"), std::string::npos) << r.err;
  std::string rsa = dir.file("rsa.pem");
  ASSERT_EQ(run_command({"openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt",
                         "rsa_keygen_bits:1024", "-out", rsa})
                .exit_code,
            0);
  ::chmod(rsa.c_str(), 0600);
  r = run_command({harness::enclosure_binary(), "collect", "--listen", "unix:" + dir.file("s"),
                   "--audit-log", dir.file("audit.log"), "--sign-key", rsa});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not an Ed25519 key"), std::string::npos) << r.err;
}

TEST(AuditSigning, AnIntervalHeadIsWrittenWhileRecordsArrive) {
  TempDir dir;
  std::string key = make_key(dir, "collector");
  SigningCollector collector(dir, {"--sign-key", key, "--sign-interval", "1s"});
  ASSERT_TRUE(collector.ready()) << collector.errors();
  auto m = harness::base_manifest("signed", {"/usr/bin/python3"});
  auto r = run_enclosure(dir, m, harness::python_agent("import time\ntime.sleep(2.5)\n"),
                         {.extra_args = {"--events", collector.events_arg()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(collector.stop(), 0) << collector.errors();
  std::string log = slurp(dir.file("audit.log"));
  EXPECT_NE(log.find("\"reason\":\"interval\""), std::string::npos) << log;
  auto v =
      verify({dir.file("audit.log")}, {"--key", dir.file("collector.pub"), "--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out;
}
