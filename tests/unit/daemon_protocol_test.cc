// launcher/daemon/protocol.h: every request `enclosure daemon` serves and every reply survives
// the trip through JSON, and a malformed request (from any local user) is refused with the
// field named, never half-read.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "launcher/daemon/protocol.h"
#include "policy/bpf_plan.h"
#include "policy/compile.h"
#include "policy/load.h"

namespace launcher {
namespace {

using nlohmann::json;

policy::EnforcementPlan compiled_plan() {
  json doc = {{"apiVersion", "enclosure/v1"},
              {"metadata", {{"name", "daemon-protocol-test"}}},
              {"filesystem", {{"read", {"/usr"}}}},
              {"tools",
               {{{"name", "sh"}, {"path", "/usr/bin/sh"}, {"max_calls", 3}},
                {{"name", "curl"}, {"path", "/usr/bin/curl"}}}},
              {"network",
               {{"mode", "filtered"},
                {"dns", true},
                {"egress",
                 {{{"cidr", "10.0.0.0/8"}, {"ports", {443}}},
                  {{"host", "api.example.com"}, {"ports", {443}}}}}}},
              {"budgets", {{"processes", 8}, {"memory", "64MiB"}, {"wall_clock", "30s"}}}};
  policy::LoadResult r = policy::load_manifest(doc.dump());
  EXPECT_TRUE(r.manifest);
  policy::CompileResult c = policy::compile(*r.manifest);
  EXPECT_TRUE(c.plan) << c.error;
  return *c.plan;
}

CreateRequest create_request() {
  CreateRequest r;
  r.plan = compiled_plan();
  r.needs.egress = r.needs.exec = r.needs.behaviour = true;
  r.files.script_tools = {1};
  r.files.loaders = {"/lib64/ld-linux-x86-64.so.2"};
  r.files.keys["/usr/bin/sh"] = {2049, 1234};
  r.files.trigger_trees["/data/pii"] = {{2049, 77}, {2049, 78}};
  r.dns_ports = std::make_pair(uint16_t{40000}, uint16_t{40001});
  r.limits.pids_max = 8;
  r.grace_ns = 2'000'000'000;
  return r;
}

AdmitRequest admit_request() {
  AdmitRequest r;
  r.cidr = *policy::parse_cidr("192.0.2.7/32").value;
  r.protocol = policy::Protocol::udp;
  r.ports = {{53, 53}, {8000, 8080}};
  r.rule = 1;
  return r;
}

// The request as it travels, read back.
DaemonRequest round_trip(const DaemonRequest& request) {
  std::string error;
  std::optional<DaemonRequest> back =
      request_from_json(json::parse(to_json(request).dump()), error);
  EXPECT_TRUE(back) << error;
  return back ? *back : DaemonRequest{};
}

// The error of decoding `j` as a request ("" when it decodes).
std::string refusal(const json& j) {
  std::string error;
  std::optional<DaemonRequest> r = request_from_json(j, error);
  EXPECT_FALSE(r) << j;
  return error;
}

json valid(const DaemonRequest& r) {
  return to_json(r);
}

// ---- Requests: round trips ----

TEST(DaemonProtocol, EveryRequestTypeRoundTrips) {
  std::vector<DaemonRequest> all = {
      HelloRequest{},
      create_request(),
      AdoptRequest{std::string(32, 'a')},
      EventsRequest{"0123456789abcdef0123456789abcdef"},
      EnterRequest{},
      CountersRequest{},
      FileOpensRequest{8192},
      RulesFiredRequest{},
      CostRequest{1'500'000},
      admit_request(),
      RevokeRequest{*policy::parse_cidr("2001:db8::/64").value, policy::Protocol::tcp},
      FlushRequest{},
      KillRequest{},
      ReleaseRequest{}};
  ASSERT_EQ(all.size(), std::variant_size_v<DaemonRequest>);
  for (const DaemonRequest& request : all) {
    DaemonRequest back = round_trip(request);
    EXPECT_EQ(back.index(), request.index()) << op_of(request);
    EXPECT_EQ(to_json(back), to_json(request)) << op_of(request);
    EXPECT_EQ(to_json(request)["op"], op_of(request));
  }
}

TEST(DaemonProtocol, CreateRequestKeepsEveryField) {
  auto back = std::get<CreateRequest>(round_trip(create_request()));
  EXPECT_EQ(back.plan.manifest_name, "daemon-protocol-test");
  EXPECT_EQ(back.plan.network.mode, policy::NetworkMode::filtered);
  EXPECT_EQ(back.plan.tools.size(), 2u);
  EXPECT_TRUE(back.needs.egress);
  EXPECT_FALSE(back.needs.egress_bytes);
  EXPECT_TRUE(back.needs.exec);
  EXPECT_FALSE(back.needs.sys_enter);
  EXPECT_FALSE(back.needs.sys_exit);
  EXPECT_TRUE(back.needs.behaviour);
  EXPECT_EQ(back.files.script_tools, std::vector<size_t>{1});
  EXPECT_EQ(back.files.loaders, std::vector<std::string>{"/lib64/ld-linux-x86-64.so.2"});
  ASSERT_EQ(back.files.keys.count("/usr/bin/sh"), 1u);
  EXPECT_EQ(back.files.keys["/usr/bin/sh"].dev, 2049u);
  EXPECT_EQ(back.files.keys["/usr/bin/sh"].ino, 1234u);
  ASSERT_EQ(back.files.trigger_trees["/data/pii"].size(), 2u);
  EXPECT_EQ(back.files.trigger_trees["/data/pii"][1].dev, 2049u);
  EXPECT_EQ(back.files.trigger_trees["/data/pii"][1].ino, 78u);
  ASSERT_TRUE(back.dns_ports);
  EXPECT_EQ(back.dns_ports->first, 40000);
  EXPECT_EQ(back.dns_ports->second, 40001);
  EXPECT_EQ(back.limits.pids_max, 8u);
  EXPECT_FALSE(back.limits.memory_max);
  EXPECT_EQ(back.grace_ns, 2'000'000'000u);
}

TEST(DaemonProtocol, CreateRequestWithoutResolverOrLimits) {
  CreateRequest r = create_request();
  r.dns_ports.reset();
  r.limits = {};
  json j = to_json(r);
  EXPECT_TRUE(j["dns_ports"].is_null());
  EXPECT_TRUE(j["limits"]["pids_max"].is_null());
  auto back = std::get<CreateRequest>(round_trip(r));
  EXPECT_FALSE(back.dns_ports);
  EXPECT_FALSE(back.limits.pids_max);
  EXPECT_FALSE(back.limits.memory_max);
}

TEST(DaemonProtocol, CreateRequestWireShape) {
  // The launcher and a daemon of the same version agree on these names.
  json j = to_json(create_request());
  EXPECT_EQ(j["op"], "create");
  EXPECT_EQ(j["plan"], policy::bpf_plan_to_json(compiled_plan()));
  EXPECT_EQ(j["needs"]["egress"], true);
  EXPECT_EQ(j["files"]["keys"]["/usr/bin/sh"], json({2049, 1234}));
  EXPECT_EQ(j["files"]["trigger_trees"]["/data/pii"], json::parse("[[2049, 77], [2049, 78]]"));
  EXPECT_EQ(j["dns_ports"], json({40000, 40001}));
  EXPECT_EQ(j["limits"]["pids_max"], 8);
  EXPECT_EQ(j["grace_ns"], 2'000'000'000u);
}

TEST(DaemonProtocol, AdmitRequestKeepsEveryField) {
  auto back = std::get<AdmitRequest>(round_trip(admit_request()));
  EXPECT_EQ(back.cidr.to_string(), "192.0.2.7/32");
  EXPECT_EQ(back.protocol, policy::Protocol::udp);
  ASSERT_EQ(back.ports.size(), 2u);
  EXPECT_EQ(back.ports[1].first, 8000);
  EXPECT_EQ(back.ports[1].last, 8080);
  EXPECT_EQ(back.rule, 1u);
  json j = to_json(admit_request());
  EXPECT_EQ(j["ports"], json({{53, 53}, {8000, 8080}}));
  EXPECT_EQ(j["protocol"], "udp");
}

TEST(DaemonProtocol, TokenAndCostRequestsKeepTheirField) {
  EXPECT_EQ(std::get<AdoptRequest>(round_trip(AdoptRequest{"abc123"})).token, "abc123");
  EXPECT_EQ(std::get<EventsRequest>(round_trip(EventsRequest{"ff"})).token, "ff");
  EXPECT_EQ(std::get<CostRequest>(round_trip(CostRequest{42})).micro_usd, 42u);
  auto revoke = std::get<RevokeRequest>(
      round_trip(RevokeRequest{*policy::parse_cidr("10.1.0.0/16").value, policy::Protocol::tcp}));
  EXPECT_EQ(revoke.cidr.to_string(), "10.1.0.0/16");
  EXPECT_EQ(revoke.protocol, policy::Protocol::tcp);
}

TEST(DaemonProtocol, UnknownFieldsAreIgnored) {
  json j = valid(CostRequest{7});
  j["future"] = {1, 2, 3};
  std::string error;
  auto r = request_from_json(j, error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(std::get<CostRequest>(*r).micro_usd, 7u);
}

// ---- Requests: refusals ----

TEST(DaemonProtocol, RefusesWhatIsNotARequest) {
  EXPECT_EQ(refusal(json::array()), "expected a JSON object with \"op\"");
  EXPECT_EQ(refusal(json::object()), "expected a JSON object with \"op\"");
  EXPECT_EQ(refusal({{"op", 7}}), "expected a JSON object with \"op\"");
  EXPECT_EQ(refusal(json::parse("null")), "expected a JSON object with \"op\"");
}

TEST(DaemonProtocol, RefusesAnUnknownOp) {
  EXPECT_EQ(refusal({{"op", "format_disk"}}), "/op: unknown op \"format_disk\"");
  EXPECT_EQ(refusal({{"op", ""}}), "/op: unknown op \"\"");
}

TEST(DaemonProtocol, RefusesAMissingField) {
  auto without = [](const DaemonRequest& r, const std::string& key) {
    json j = valid(r);
    j.erase(key);
    return refusal(j);
  };
  EXPECT_EQ(without(create_request(), "plan"), "/plan: missing");
  EXPECT_EQ(without(create_request(), "needs"), "/needs: missing");
  EXPECT_EQ(without(create_request(), "files"), "/files: missing");
  EXPECT_EQ(without(create_request(), "dns_ports"), "/dns_ports: missing");
  EXPECT_EQ(without(create_request(), "limits"), "/limits: missing");
  EXPECT_EQ(without(create_request(), "grace_ns"), "/grace_ns: missing");
  EXPECT_EQ(without(AdoptRequest{"ab"}, "token"), "/token: missing");
  EXPECT_EQ(without(EventsRequest{"ab"}, "token"), "/token: missing");
  EXPECT_EQ(without(CostRequest{1}, "micro_usd"), "/micro_usd: missing");
  EXPECT_EQ(without(admit_request(), "cidr"), "/cidr: missing");
  EXPECT_EQ(without(admit_request(), "protocol"), "/protocol: missing");
  EXPECT_EQ(without(admit_request(), "ports"), "/ports: missing");
  EXPECT_EQ(without(admit_request(), "rule"), "/rule: missing");
  RevokeRequest revoke{*policy::parse_cidr("10.0.0.1/32").value, policy::Protocol::tcp};
  EXPECT_EQ(without(revoke, "cidr"), "/cidr: missing");
  EXPECT_EQ(without(revoke, "protocol"), "/protocol: missing");
}

TEST(DaemonProtocol, RefusesAMissingNestedField) {
  json j = valid(create_request());
  j["needs"].erase("sys_exit");
  EXPECT_EQ(refusal(j), "/needs/sys_exit: missing");
  j = valid(create_request());
  j["files"].erase("keys");
  EXPECT_EQ(refusal(j), "/files/keys: missing");
  j = valid(create_request());
  j["limits"].erase("memory_max");
  EXPECT_EQ(refusal(j), "/limits/memory_max: missing");
  j = valid(create_request());
  j["plan"]["network"].erase("mode");
  EXPECT_EQ(refusal(j), "/plan/network/mode: missing");
}

TEST(DaemonProtocol, TriggerTreesAreOptionalAndCheckedWhenPresent) {
  json j = valid(create_request());
  j["files"].erase("trigger_trees");  // a launcher before read triggers by identity
  std::string error;
  std::optional<DaemonRequest> r = request_from_json(j, error);
  ASSERT_TRUE(r) << error;
  EXPECT_TRUE(std::get<CreateRequest>(*r).files.trigger_trees.empty());
  j["files"]["trigger_trees"] = {{"/data/pii", json::parse("[[2049, 77], [2049]]")}};
  EXPECT_EQ(refusal(j), "/files/trigger_trees//data/pii/1: expected [device, inode]");
}

TEST(DaemonProtocol, RefusesAWrongType) {
  auto with = [](const DaemonRequest& r, const json::json_pointer& at, const json& value) {
    json j = valid(r);
    j[at] = value;
    return refusal(j);
  };
  EXPECT_EQ(with(create_request(), "/plan"_json_pointer, "plan"), "/plan: expected an object");
  EXPECT_EQ(with(create_request(), "/needs"_json_pointer, json::array()),
            "/needs: expected an object");
  EXPECT_EQ(with(create_request(), "/needs/egress"_json_pointer, 1),
            "/needs/egress: expected true or false");
  EXPECT_EQ(with(create_request(), "/files/script_tools"_json_pointer, "0"),
            "/files/script_tools: expected a list of at most 65536");
  EXPECT_EQ(with(create_request(), "/files/script_tools/0"_json_pointer, -1),
            "/files/script_tools/0: expected a whole number up to 65536");
  EXPECT_EQ(with(create_request(), "/files/loaders/0"_json_pointer, 5),
            "/files/loaders/0: expected a string");
  EXPECT_EQ(with(create_request(), "/files/keys"_json_pointer, json::array()),
            "/files/keys: expected an object of at most 65536");
  EXPECT_EQ(with(create_request(), "/files/keys/~1usr~1bin~1sh"_json_pointer, 5),
            "/files/keys//usr/bin/sh: expected [device, inode]");
  EXPECT_EQ(with(create_request(), "/files/keys/~1usr~1bin~1sh/1"_json_pointer, "x"),
            "/files/keys//usr/bin/sh/1: expected a whole number up to 18446744073709551615");
  EXPECT_EQ(with(create_request(), "/dns_ports"_json_pointer, 53),
            "/dns_ports: expected [first, last]");
  EXPECT_EQ(with(create_request(), "/limits/pids_max"_json_pointer, "8"),
            "/limits/pids_max: expected a whole number up to 18446744073709551615");
  EXPECT_EQ(with(create_request(), "/grace_ns"_json_pointer, 1.5),
            "/grace_ns: expected a whole number up to 18446744073709551615");
  EXPECT_EQ(with(AdoptRequest{"ab"}, "/token"_json_pointer, 12), "/token: expected a string");
  EXPECT_EQ(with(CostRequest{1}, "/micro_usd"_json_pointer, -3),
            "/micro_usd: expected a whole number up to 18446744073709551615");
  EXPECT_EQ(with(admit_request(), "/cidr"_json_pointer, json::object()),
            "/cidr: expected a string");
  EXPECT_EQ(with(admit_request(), "/ports"_json_pointer, json::object()),
            "/ports: expected a list of at most 65536");
  EXPECT_EQ(with(admit_request(), "/ports/0"_json_pointer, 80), "/ports/0: expected [first, last]");
  EXPECT_EQ(with(admit_request(), "/rule"_json_pointer, "0"),
            "/rule: expected a whole number up to 65536");
}

TEST(DaemonProtocol, RefusesAValueOutOfRange) {
  auto with = [](const DaemonRequest& r, const json::json_pointer& at, const json& value) {
    json j = valid(r);
    j[at] = value;
    return refusal(j);
  };
  EXPECT_EQ(with(admit_request(), "/ports/0/1"_json_pointer, 65536),
            "/ports/0/1: expected a port from 0 to 65535");
  EXPECT_EQ(with(admit_request(), "/ports/1"_json_pointer, json({9000, 8000})),
            "/ports/1: the first port is above the last");
  EXPECT_EQ(with(admit_request(), "/ports/0/0"_json_pointer, -1),
            "/ports/0/0: expected a port from 0 to 65535");
  EXPECT_EQ(with(create_request(), "/dns_ports/1"_json_pointer, 70000),
            "/dns_ports/1: expected a port from 0 to 65535");
  EXPECT_EQ(with(create_request(), "/dns_ports"_json_pointer, json({53})),
            "/dns_ports: expected [first, last]");
  EXPECT_EQ(with(admit_request(), "/rule"_json_pointer, 65537),
            "/rule: expected a whole number up to 65536");
  EXPECT_EQ(with(create_request(), "/files/script_tools/0"_json_pointer, 2),
            "/files/script_tools/0: expected the index of a tool");
  EXPECT_EQ(with(admit_request(), "/cidr"_json_pointer, "10.0.0.0/33").rfind("/cidr: expected ", 0),
            0u);
  EXPECT_EQ(with(admit_request(), "/protocol"_json_pointer, "icmp"),
            "/protocol: expected tcp or udp");
  EXPECT_EQ(with(AdoptRequest{"ab"}, "/token"_json_pointer, "../../etc/passwd"),
            "/token: expected a run's token (at most 64 hex digits)");
  EXPECT_EQ(with(AdoptRequest{"ab"}, "/token"_json_pointer, ""),
            "/token: expected a run's token (at most 64 hex digits)");
  EXPECT_EQ(with(EventsRequest{"ab"}, "/token"_json_pointer, std::string(65, 'a')),
            "/token: expected a run's token (at most 64 hex digits)");
  EXPECT_EQ(with(create_request(), "/plan/network/mode"_json_pointer, "open"),
            "/plan/network/mode: expected none, filtered or host");
}

TEST(DaemonProtocol, FuzzSeedsAreValidRequests) {
  std::string dir = std::string(ENCLOSURE_SOURCE_DIR) + "/tests/fuzz/corpus/fuzz_daemon_request";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    std::string error;
    EXPECT_TRUE(request_from_json(json::parse(text.str()), error)) << entry.path() << ": " << error;
    ++seeds;
  }
  EXPECT_GE(seeds, 5u);
}

// ---- Replies ----

TEST(DaemonProtocol, HelloReplyRoundTrips) {
  HelloReply r;
  r.uid = 61001;
  r.programs = {{"network", json::array({"cgroup/connect4"})}};
  r.cgroup_pids = "v2";
  r.cgroup_memory = "";
  json j = r.to_json();
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["version"], kDaemonProtocolVersion);
  std::string error;
  auto back = HelloReply::from_json(json::parse(j.dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->version, kDaemonProtocolVersion);
  EXPECT_EQ(back->uid, 61001u);
  EXPECT_EQ(back->programs, r.programs);
  EXPECT_EQ(back->cgroup_pids, "v2");
  EXPECT_EQ(back->cgroup_memory, "");
  EXPECT_EQ(back->to_json(), j);
}

TEST(DaemonProtocol, HelloReplyOfAnotherVersionHoldsOnlyItsVersion) {
  std::string error;
  const int other = kDaemonProtocolVersion + 1;
  auto back = HelloReply::from_json({{"ok", true}, {"version", other}}, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->version, other);
  EXPECT_FALSE(HelloReply::from_json({{"ok", true}}, error));
  EXPECT_EQ(error, "/version: missing");
  json j = HelloReply{}.to_json();
  j["cgroup"].erase("memory");
  EXPECT_FALSE(HelloReply::from_json(j, error));
  EXPECT_EQ(error, "/cgroup/memory: missing");
}

RunReply run_reply() {
  RunReply r;
  r.token = std::string(32, 'c');
  r.cgroup_id = 4242;
  r.cgroup.v2 = "/sys/fs/cgroup/enclosure-daemon/run-cccc";
  r.cgroup.v1 = {{"pids", "/sys/fs/cgroup/pids/enclosure-daemon/run-cccc"}};
  r.cgroup.placement_pids = "v1";
  r.cgroup.placement_memory = "v2";
  r.cgroup.limits.memory_max = 1 << 20;
  r.cgroup_report = {{"v2", r.cgroup.v2}};
  r.bpf.programs = json::array({"tp_btf/sched_process_exec"});
  r.bpf.daemon = "/run/enclosure/daemon.sock";
  r.bpf.ring_buffer_bytes = 1 << 22;
  r.descriptors = {"v2", "pids"};
  return r;
}

TEST(DaemonProtocol, RunReplyRoundTrips) {
  RunReply r = run_reply();
  json j = r.to_json();
  std::string error;
  auto back = RunReply::from_json(json::parse(j.dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->token, r.token);
  EXPECT_EQ(back->cgroup_id, 4242u);
  EXPECT_EQ(back->cgroup.v2, r.cgroup.v2);
  EXPECT_EQ(back->cgroup.v1, r.cgroup.v1);
  EXPECT_EQ(back->cgroup.placement_pids, "v1");
  EXPECT_EQ(back->cgroup.placement_memory, "v2");
  EXPECT_FALSE(back->cgroup.limits.pids_max);
  EXPECT_EQ(back->cgroup.limits.memory_max, uint64_t{1} << 20);
  EXPECT_EQ(back->cgroup_report, r.cgroup_report);
  EXPECT_EQ(back->bpf.programs, r.bpf.programs);
  EXPECT_EQ(back->bpf.daemon, r.bpf.daemon);
  EXPECT_EQ(back->bpf.ring_buffer_bytes, uint64_t{1} << 22);
  EXPECT_EQ(back->descriptors, r.descriptors);
  EXPECT_EQ(back->to_json(), j);
  // The start event's "bpf" field is this object.
  EXPECT_EQ(j["bpf"], json({{"programs", r.bpf.programs},
                            {"daemon", "/run/enclosure/daemon.sock"},
                            {"ring_buffer_bytes", 1 << 22}}));
}

TEST(DaemonProtocol, RunReplyRefusals) {
  std::string error;
  json j = run_reply().to_json();
  j["cgroup"]["v2"] = "relative/path";
  EXPECT_FALSE(RunReply::from_json(j, error));
  EXPECT_EQ(error, "/cgroup/v2: expected an absolute path");
  j = run_reply().to_json();
  j["bpf"].erase("daemon");
  EXPECT_FALSE(RunReply::from_json(j, error));
  EXPECT_EQ(error, "/bpf/daemon: missing");
  j = run_reply().to_json();
  j["cgroup"]["v1"]["pids"] = 3;
  EXPECT_FALSE(RunReply::from_json(j, error));
  EXPECT_EQ(error, "/cgroup/v1/pids: expected a string");
  j = run_reply().to_json();
  j["cgroup_report"] = "none";
  EXPECT_FALSE(RunReply::from_json(j, error));
  EXPECT_EQ(error, "/cgroup_report: expected an object of at most 65536");
  j = run_reply().to_json();
  j.erase("descriptors");  // a daemon of the protocol before it sent the cgroup directories
  EXPECT_FALSE(RunReply::from_json(j, error));
  EXPECT_EQ(error, "/descriptors: missing");
  j = run_reply().to_json();
  j["descriptors"][1] = 7;
  EXPECT_FALSE(RunReply::from_json(j, error));
  EXPECT_EQ(error, "/descriptors/1: expected a string");
}

TEST(DaemonProtocol, CountersReplyRoundTripsTheStateBytes) {
  CountersReply r;
  r.state = std::string("\x00\x01\xfe\xff", 4);
  r.syscalls_pending = 9;
  r.histogram = {{0, 10}, {59, 2}};
  r.forward_lost = 3;
  json j = r.to_json();
  EXPECT_EQ(j["state"], "0001feff");
  std::string error;
  auto back = CountersReply::from_json(json::parse(j.dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->state, r.state);
  EXPECT_EQ(back->syscalls_pending, 9u);
  EXPECT_EQ(back->histogram, r.histogram);
  EXPECT_EQ(back->forward_lost, 3u);
  EXPECT_EQ(back->forward_suppressed, 0u);
  j["state"] = "abc";
  EXPECT_FALSE(CountersReply::from_json(j, error));
  EXPECT_EQ(error, "/state: expected hex digits of at most 65536 bytes");
  j["state"] = "zz";
  EXPECT_FALSE(CountersReply::from_json(j, error));
  j = r.to_json();
  j["histogram"][1] = {-1, 2};
  EXPECT_FALSE(CountersReply::from_json(j, error));
  EXPECT_EQ(error, "/histogram/1: expected [syscall number, count]");
}

TEST(DaemonProtocol, SmallRepliesRoundTrip) {
  std::string error;
  auto rules = RulesFiredReply::from_json(RulesFiredReply{0x8000000000000001ULL}.to_json(), error);
  ASSERT_TRUE(rules) << error;
  EXPECT_EQ(rules->bits, 0x8000000000000001ULL);
  auto kill = KillReply::from_json(KillReply{true}.to_json(), error);
  ASSERT_TRUE(kill) << error;
  EXPECT_TRUE(kill->empty);
  EXPECT_EQ(EmptyReply{}.to_json(), json({{"ok", true}}));
  EXPECT_TRUE(EmptyReply::from_json(EmptyReply{}.to_json(), error));
  EXPECT_FALSE(EmptyReply::from_json(json::array(), error));
  auto refusal = RefusalReply::from_json(RefusalReply{"no such run of uid 7"}.to_json(), error);
  ASSERT_TRUE(refusal) << error;
  EXPECT_EQ(refusal->error, "no such run of uid 7");
  EXPECT_EQ(RefusalReply{"x"}.to_json(), json({{"ok", false}, {"error", "x"}}));
  EXPECT_FALSE(RulesFiredReply::from_json({{"ok", true}}, error));
  EXPECT_EQ(error, "/bits: missing");
  EXPECT_FALSE(KillReply::from_json({{"ok", true}, {"empty", "yes"}}, error));
  EXPECT_EQ(error, "/empty: expected true or false");
}

// ---- The daemon's state file ----

TEST(DaemonProtocol, RunStateRoundTrips) {
  RunState s;
  s.token = std::string(32, 'd');
  s.uid = 61001;
  s.gid = 61001;
  s.launcher = 4321;
  s.cgroup_id = 99;
  s.cgroup = run_reply().cgroup;
  s.plan = compiled_plan();
  s.needs.sys_enter = true;
  json j = s.to_json();
  std::string error;
  auto back = RunState::from_json(json::parse(j.dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->token, s.token);
  EXPECT_EQ(back->uid, 61001u);
  EXPECT_EQ(back->gid, 61001u);
  EXPECT_EQ(back->launcher, 4321);
  EXPECT_EQ(back->cgroup_id, 99u);
  EXPECT_EQ(back->cgroup.v2, s.cgroup.v2);
  EXPECT_EQ(back->plan.manifest_name, "daemon-protocol-test");
  EXPECT_TRUE(back->needs.sys_enter);
  EXPECT_EQ(back->to_json(), j);
  j["launcher"] = -1;
  EXPECT_FALSE(RunState::from_json(j, error));
  EXPECT_EQ(error, "/launcher: expected a whole number up to 2147483647");
  j = s.to_json();
  j.erase("needs");
  EXPECT_FALSE(RunState::from_json(j, error));
  EXPECT_EQ(error, "/needs: missing");
}

TEST(DaemonProtocol, CountersReplyCarriesRecordsSuppressedByTheUsersEventRate) {
  CountersReply r;
  r.forward_lost = 2;
  r.forward_suppressed = 70000;
  std::string error;
  auto back = CountersReply::from_json(json::parse(r.to_json().dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->forward_lost, 2u);
  EXPECT_EQ(back->forward_suppressed, 70000u);
  // A daemon without the field (an older one) suppressed nothing.
  json j = r.to_json();
  j.erase("forward_suppressed");
  back = CountersReply::from_json(j, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->forward_suppressed, 0u);
  j["forward_suppressed"] = -1;
  EXPECT_FALSE(CountersReply::from_json(j, error));
}

// file_opens pages carry whole entries of the ABI's size, within their total; anything else is
// refused with the field named, so the launcher never decodes part of an entry.
TEST(DaemonProtocol, FileOpensReplyCarriesWholeEntriesWithinItsTotal) {
  FileOpensReply r;
  r.offset = 4096;
  r.total = 4098;
  r.entries = std::string(2 * kFileOpenEntryBytes, '\0');
  r.entries[0] = '\x7f';
  r.entries[kFileOpenEntryBytes] = '\x01';
  std::string error;
  auto back = FileOpensReply::from_json(json::parse(r.to_json().dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->offset, 4096u);
  EXPECT_EQ(back->total, 4098u);
  EXPECT_EQ(back->count(), 2u);
  EXPECT_EQ(back->entries, r.entries);

  FileOpensReply partial = r;
  partial.entries.pop_back();  // not a whole entry
  EXPECT_FALSE(FileOpensReply::from_json(partial.to_json(), error));
  EXPECT_NE(error.find("/entries"), std::string::npos) << error;
  FileOpensReply past = r;
  past.total = 4097;  // two entries from 4096 are past a total of 4097
  EXPECT_FALSE(FileOpensReply::from_json(past.to_json(), error));
  EXPECT_NE(error.find("/offset"), std::string::npos) << error;
  FileOpensReply too_many;
  too_many.total = kFileOpensPerPage + 1;
  too_many.entries = std::string((kFileOpensPerPage + 1) * kFileOpenEntryBytes, '\0');
  EXPECT_FALSE(FileOpensReply::from_json(too_many.to_json(), error));
  json odd = r.to_json();
  odd["entries"] = "0g";
  EXPECT_FALSE(FileOpensReply::from_json(odd, error));
  // The request carries the offset alone, a whole number.
  EXPECT_FALSE(FileOpensRequest::from_json({{"offset", -1}}, error));
  EXPECT_FALSE(FileOpensRequest::from_json(json::object(), error));
}

}  // namespace
}  // namespace launcher
