// examples/data-agent.json end to end, as README's section on it says: the agent reaches its
// database before it reads customer files, and nothing after. The launcher runs in a network
// namespace of the test's own whose only route leads to a peer namespace holding the
// "database" (10.20.0.15:5432, the example's egress rule), joined by a veth pair.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace {

using harness::python_agent;
using harness::python_result;
using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

// Two network namespaces joined by a veth pair: "agent" (10.20.0.1/16, where the launcher runs)
// and "db" (10.20.0.15/16). Removed, with the pair, when this object goes.
class VethPair {
 public:
  VethPair() : agent_("enc-da-" + std::to_string(::getpid())), db_(agent_ + "-db") {
    std::string veth = "enc" + std::to_string(::getpid());
    ok_ = ip({"netns", "add", agent_}) && ip({"netns", "add", db_}) &&
          ip({"link", "add", veth + "a", "netns", agent_, "type", "veth", "peer", "name",
              veth + "b", "netns", db_}) &&
          ip({"-n", agent_, "addr", "add", "10.20.0.1/16", "dev", veth + "a"}) &&
          ip({"-n", db_, "addr", "add", "10.20.0.15/16", "dev", veth + "b"}) &&
          ip({"-n", agent_, "link", "set", veth + "a", "up"}) &&
          ip({"-n", db_, "link", "set", veth + "b", "up"}) &&
          ip({"-n", agent_, "link", "set", "lo", "up"}) &&
          ip({"-n", db_, "link", "set", "lo", "up"});
  }
  ~VethPair() {
    ip({"netns", "del", agent_});
    ip({"netns", "del", db_});
  }
  bool ok() const { return ok_; }
  std::string agent_path() const { return "/run/netns/" + agent_; }
  std::string db_path() const { return "/run/netns/" + db_; }

 private:
  static bool ip(std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    return run_command(args).exit_code == 0;
  }
  std::string agent_, db_;
  bool ok_ = false;
};

// A TCP listener on 10.20.0.15:5432 in the "db" namespace that counts connections and bytes
// into `log` (one line per connection: its byte count).
class Database {
 public:
  Database(const std::string& netns, const std::string& log) : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execlp("nsenter", "nsenter", ("--net=" + netns).c_str(), "python3", "-c",
               "import socket, sys\n"
               "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
               "s.bind(('10.20.0.15', 5432)); s.listen(16)\n"
               "open(sys.argv[1] + '.ready', 'w').close()\n"
               "while True:\n"
               "    c, _ = s.accept(); n = 0\n"
               "    while True:\n"
               "        b = c.recv(4096)\n"
               "        if not b: break\n"
               "        n += len(b)\n"
               "    c.close()\n"
               "    with open(sys.argv[1], 'a') as f: f.write('%d\\n' % n)\n",
               log.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Database() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ready() const {
    return harness::wait_until([&] { return std::filesystem::exists(log_ + ".ready"); }, 10000);
  }
  std::string connections() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

// The customer's files and report folder on the host, removed afterwards with every parent
// folder this test had to create.
struct CustomerFiles {
  explicit CustomerFiles(const std::string& id)
      : data("/data/customers/" + id), reports("/srv/reports/" + id) {
    for (const char* parent : {"/data", "/data/customers", "/srv", "/srv/reports"}) {
      if (!std::filesystem::exists(parent)) created.insert(created.begin(), parent);
    }
    std::filesystem::create_directories(data + "/payment-cards");
    std::filesystem::create_directories(reports);
    std::filesystem::permissions(reports, std::filesystem::perms::all);
    std::ofstream(data + "/orders.csv") << "order,amount\n1,20\n2,22\n";
    std::ofstream(data + "/payment-cards/cards.csv") << "4111111111111111\n";
  }
  ~CustomerFiles() {
    std::error_code ec;
    std::filesystem::remove_all(data, ec);
    std::filesystem::remove_all(reports, ec);
    for (const std::string& parent : created)  // deepest first
      std::filesystem::remove(parent, ec);
  }
  std::string data, reports;
  std::vector<std::string> created;
};

json data_agent_manifest() {
  std::ifstream in(std::string(ENCLOSURE_SOURCE_DIR) + "/examples/data-agent.json");
  return json::parse(in);
}

}  // namespace

TEST(ExampleDataAgent, DatabaseBeforeTheCustomerFilesNothingAfter) {
  VethPair net;
  ASSERT_TRUE(net.ok()) << "cannot create the test's network namespaces";
  TempDir dir;
  Database db(net.db_path(), dir.file("db.log"));
  ASSERT_TRUE(db.ready()) << "the test database did not start";
  std::string id = std::to_string(900000000 + ::getpid());
  CustomerFiles files(id);
  std::string body =
      "import socket\n"
      "def query():\n"
      "    s = socket.create_connection(('10.20.0.15', 5432), timeout=5)\n"
      "    s.sendall(b'SELECT 1;'); s.close()\n"
      "t('db_before', query)\n"
      "t('cards', lambda: open('/data/customers/%s/payment-cards/cards.csv' % A[0]).read())\n"
      "t('orders', lambda: len(open('/data/customers/%s/orders.csv' % A[0]).read()))\n"
      "t('db_after', query)\n"
      "t('report', lambda: open('report.md', 'w').write('2 orders\\n'))\n";
  harness::RunOptions o;
  o.netns = net.agent_path();
  o.extra_args = {"--context", "customer_id=" + id};
  RunResult r = run_enclosure(dir, data_agent_manifest(), python_agent(body, {id}), o);
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["db_before"], "ok") << r.describe();
  EXPECT_EQ(res["cards"], "ENOENT") << r.describe();  // hidden
  EXPECT_EQ(res["orders"], 23) << r.describe();
  EXPECT_EQ(res["db_after"], "EPERM") << r.describe();
  EXPECT_EQ(res["report"], 9) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  // Exactly one connection reached the database, with the query's 9 bytes.
  EXPECT_TRUE(harness::wait_until([&] { return !db.connections().empty(); }, 5000));
  EXPECT_EQ(db.connections(), "9\n");
  // The rule fired once, on the agent's read of orders.csv, and named the refused connect.
  auto rules = r.of_type("rule");
  ASSERT_EQ(rules.size(), 1u) << r.describe();
  EXPECT_EQ(rules[0].value("rule", ""), "no-network-after-customer-files") << rules[0].dump();
  bool denied = false;
  for (const json& d : r.of_type("deny")) {
    denied |= d.value("rule", "") == "no-network-after-customer-files";
  }
  EXPECT_TRUE(denied) << r.describe();
  std::ifstream report(files.reports + "/report.md");
  std::string line;
  EXPECT_TRUE(std::getline(report, line) && line == "2 orders");
}
