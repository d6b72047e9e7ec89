// Malformed manifests: each error is reported at the exact JSON pointer of the value at fault,
// with a message that says what was expected; all errors of a file are reported at once; and
// `enclosure check` reports them as "FILE: /path: message" lines with exit status 2.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy/diagnostics.h"
#include "policy/load.h"

namespace {

using nlohmann::json;

// A manifest that uses every section and loads without error. Each case below changes it with
// an RFC 7386 merge patch (null removes a key, arrays are replaced whole).
constexpr const char* kBase = R"({
  "apiVersion": "enclosure/v1",
  "metadata": {"name": "base", "revision": 3, "approved_by": "sec@example.com",
               "reason": "CHG-1", "labels": {"team": "qa"}},
  "context": {
    "customer_id": {"pattern": "^[0-9]{1,12}$", "default": "42"},
    "workdir": {"pattern": "^/srv/tasks/[a-z0-9-]+$", "default": "/srv/tasks/scratch"}
  },
  "process": {"cwd": "${workdir}",
              "env": {"pass": ["PATH", "LANG"], "set": {"HOME": "${workdir}"}},
              "user": {"uid": 65534, "gid": 65534}},
  "filesystem": {"read": ["/usr", "/data/customers/${customer_id}"],
                 "write": ["${workdir}"],
                 "tmpfs": ["/tmp"],
                 "hide": ["/data/customers/${customer_id}/cards"]},
  "tools": [{"name": "python", "path": "/usr/bin/python3", "max_calls": 20},
            {"name": "git", "path": "/usr/bin/git", "max_calls": 100, "cost_usd": 0.005}],
  "network": {"mode": "filtered",
              "egress": [{"host": "api.example.com", "ports": [443]},
                         {"cidr": "10.20.0.0/16", "ports": [5432, "6000-6010"],
                          "protocol": "tcp"}],
              "dns": true},
  "syscalls": {"profile": "default", "deny": ["ptrace"], "action": "errno"},
  "budgets": {"wall_clock": "5m", "cpu_time": "2m", "tool_calls": 200, "syscalls": 2000000,
              "processes": 64, "memory": "2GiB", "egress_bytes": "50MiB", "cost_usd": 0.5},
  "rules": [{"id": "no-exfil", "after": {"read": ["/data/customers/${customer_id}"]},
             "deny": ["network"]}],
  "audit": {"files": true, "syscalls": false},
  "on_violation": "deny",
  "enforcement": {"allow_degraded": []}
})";

std::string patched(const std::string& patch) {
  json doc = json::parse(kBase);
  doc.merge_patch(json::parse(patch));
  return doc.dump(2);
}

std::string render(const policy::Diagnostics& d) {
  std::string out;
  for (const policy::Diagnostic& e : d.errors())
    out += "  " + e.path + ": " + e.message + "\n";
  return out;
}

struct ErrorCase {
  const char* name;
  const char* patch;  // merge patch over kBase, or the whole text when `raw`
  const char* path;   // exact JSON pointer of the expected error
  const char* fragment;
  size_t count = 1;  // number of errors the manifest has in all
  bool raw = false;
};

// Failure messages name the case rather than dumping its bytes.
void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ManifestError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ManifestError, ReportsExactPointerAndMessage) {
  const ErrorCase& c = GetParam();
  std::string text = c.raw ? std::string(c.patch) : patched(c.patch);
  policy::LoadResult r = policy::load_manifest(text);
  EXPECT_FALSE(r.manifest.has_value()) << "accepted:\n" << text;
  bool found = false;
  for (const policy::Diagnostic& e : r.diagnostics.errors()) {
    if (e.path == c.path && e.message.find(c.fragment) != std::string::npos) found = true;
  }
  EXPECT_TRUE(found) << "expected " << c.path << ": ..." << c.fragment << "...\ngot:\n"
                     << render(r.diagnostics);
  EXPECT_EQ(r.diagnostics.errors().size(), c.count) << render(r.diagnostics);
}

const ErrorCase kCases[] = {
    // ---- unknown keys ----------------------------------------------------------------------
    {"UnknownTopLevelKeyWithHint", R"({"tool": []})", "/tool",
     "unknown key (did you mean \"tools\"?); expected one of: apiVersion, metadata"},
    {"UnknownTopLevelKeyWithoutHint", R"({"xyzzy": 1})", "/xyzzy",
     "unknown key; expected one of: apiVersion"},
    {"UnknownMetadataKey", R"({"metadata": {"nmae": "x"}})", "/metadata/nmae",
     "did you mean \"name\"?"},
    {"UnknownEgressKeyWithHint",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443], "protocl": "tcp"}]}})",
     "/network/egress/0/protocl", "did you mean \"protocol\"?"},
    {"UnknownFilesystemKey", R"({"filesystem": {"reed": ["/opt"]}})", "/filesystem/reed",
     "did you mean \"read\"?"},
    {"UnknownRuleTriggerKey",
     R"({"rules": [{"id": "r", "after": {"reads": ["/usr"]}, "deny": ["network"]}]})",
     "/rules/0/after/reads", "did you mean \"read\"?"},
    {"UnknownContextDeclarationKey",
     R"({"context": {"customer_id": {"pattern": "^[0-9]+$", "defualt": "1"}}})",
     "/context/customer_id/defualt",
     "unknown key (did you mean \"default\"?); expected one of: pattern, default"},
    {"UnknownBudgetKey", R"({"budgets": {"wallclock": "5m"}})", "/budgets/wallclock",
     "did you mean \"wall_clock\"?"},

    // ---- wrong types -----------------------------------------------------------------------
    {"RevisionAsString", R"({"metadata": {"revision": "7"}})", "/metadata/revision",
     "expected a non-negative integer, got \"7\""},
    {"DnsNotBoolean", R"({"network": {"dns": "yes"}})", "/network/dns",
     "expected true or false, got \"yes\""},
    {"ReadNotArray", R"({"filesystem": {"read": "/usr"}})", "/filesystem/read",
     "expected an array of absolute paths, got \"/usr\""},
    {"MaxCallsNegative",
     R"({"tools": [{"name": "python", "path": "/usr/bin/python3", "max_calls": -1}]})",
     "/tools/0/max_calls", "expected a non-negative integer, got -1"},
    {"AuditFilesNumber", R"({"audit": {"files": 1}})", "/audit/files", "expected true or false"},
    {"ToolNotObject", R"({"tools": [{"name": "python", "path": "/usr/bin/python3"}, "git"]})",
     "/tools/1", "expected an object, got \"git\""},
    {"LabelValueNotStringEscapedKey", R"({"metadata": {"labels": {"a/b~c": 1}}})",
     "/metadata/labels/a~1b~0c", "expected a string, got 1"},
    {"OnViolationUnknown", R"({"on_violation": "warn"})", "/on_violation",
     "expected \"deny\" or \"kill\", got \"warn\""},
    {"ProtocolUnknown",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443], "protocol": "icmp"}]}})",
     "/network/egress/0/protocol", "expected \"tcp\" or \"udp\", got \"icmp\""},
    {"PrivateNotBoolean",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443], "private": "yes"}]}})",
     "/network/egress/0/private", "expected true or false, got \"yes\""},
    {"UnixRelative", R"({"network": {"unix": ["run/app.sock"]}})", "/network/unix/0",
     "expected an absolute path (starting with \"/\"), got \"run/app.sock\""},
    {"UnixDotSegment", R"({"network": {"unix": ["/usr/../run/app.sock"]}})", "/network/unix/0",
     "expected a path without \"..\" segments"},
    {"UnixTooLong",
     R"({"network": {"unix": ["/usr/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock"]}})",
     "/network/unix/0",
     "expected a path of at most 107 bytes (the longest a unix socket address holds)"},
    {"UnixTwice", R"({"network": {"unix": ["/usr/app.sock", "/usr/app.sock"]}})", "/network/unix/1",
     "listed twice (also at /network/unix/0)"},
    {"UnixNotAString", R"({"network": {"unix": [3]}})", "/network/unix/0",
     "expected absolute paths of unix sockets, got 3"},
    {"PrivateOnCidrRule",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443]},
                                {"cidr": "10.20.0.0/16", "ports": [5432], "private": true}]}})",
     "/network/egress/1/private", "\"private\" applies only to host rules"},

    // ---- durations and sizes ---------------------------------------------------------------
    {"DurationBadUnit", R"({"budgets": {"wall_clock": "5min"}})", "/budgets/wall_clock",
     "expected a duration unit ns, us, ms, s, m, h or d, got \"5min\""},
    {"DurationZero", R"({"budgets": {"cpu_time": "0s"}})", "/budgets/cpu_time",
     "expected a duration greater than zero, got \"0s\""},
    {"DurationNumber", R"({"budgets": {"wall_clock": 300}})", "/budgets/wall_clock",
     "expected a duration such as \"300ms\""},
    {"DurationFraction", R"({"budgets": {"wall_clock": "1.5s"}})", "/budgets/wall_clock",
     "got \"1.5s\""},
    {"SizeBadUnit", R"({"budgets": {"memory": "2gib"}})", "/budgets/memory",
     "expected a size unit B, KiB, MiB, GiB, TiB, kB, MB, GB or TB, got \"2gib\""},
    {"SizeZero", R"({"budgets": {"egress_bytes": "0MiB"}})", "/budgets/egress_bytes",
     "expected a size greater than zero"},
    {"SizeNegativeNumber", R"({"budgets": {"memory": -5}})", "/budgets/memory",
     "a positive number of bytes, got -5"},

    // ---- paths -----------------------------------------------------------------------------
    {"RelativeReadPath", R"({"filesystem": {"read": ["/usr", "data"]}, "rules": null})",
     "/filesystem/read/1", "expected an absolute path (starting with \"/\"), got \"data\""},
    {"DotDotSegment", R"({"filesystem": {"read": ["/usr", "/data/../etc"]}, "rules": null})",
     "/filesystem/read/1", "expected a path without \"..\" segments"},
    {"TrailingSlash", R"({"filesystem": {"tmpfs": ["/tmp/"]}})", "/filesystem/tmpfs/0",
     "a path without a trailing \"/\" (did you mean \"/tmp\"?)"},
    {"DoubleSlash", R"({"filesystem": {"tmpfs": ["/tmp//x"]}})", "/filesystem/tmpfs/0",
     "a path without empty segments (\"//\")"},
    {"RelativeCwd", R"({"process": {"cwd": "srv"}})", "/process/cwd",
     "expected an absolute path (starting with \"/\"), got \"srv\""},
    {"RelativeToolPath", R"({"tools": [{"name": "python", "path": "python3"}]})", "/tools/0/path",
     "expected an absolute path"},
    {"DotSegmentInHide", R"({"filesystem": {"hide": ["/usr/./lib"]}})", "/filesystem/hide/0",
     "a path without \".\" segments"},

    // ---- tools -----------------------------------------------------------------------------
    {"DuplicateToolName",
     R"({"tools": [{"name": "python", "path": "/usr/bin/python3"},
                   {"name": "python", "path": "/usr/bin/python3.12"}]})",
     "/tools/1/name", "duplicate tool name \"python\" (also at /tools/0/name)"},
    {"DuplicateToolPath",
     R"({"tools": [{"name": "python", "path": "/usr/bin/python3"},
                   {"name": "py", "path": "/usr/bin/python3"}]})",
     "/tools/1/path", "duplicate tool path \"/usr/bin/python3\" (also at /tools/0/path)"},
    {"EmptyTools", R"({"tools": []})", "/tools", "expected a non-empty array of tools"},
    {"MissingTools", R"({"tools": null})", "/tools",
     "required key is missing; expected a non-empty array of tools"},
    {"ToolWithoutPath", R"({"tools": [{"name": "python"}]})", "/tools/0/path",
     "required key is missing"},
    {"ToolNameWithSpace", R"({"tools": [{"name": "py thon", "path": "/usr/bin/python3"}]})",
     "/tools/0/name", "expected a tool name of 1 to 64 letters"},
    {"ToolUnderProc", R"({"tools": [{"name": "self", "path": "/proc/self/exe"}]})", "/tools/0/path",
     "expected the path of an executable outside /proc and /dev"},
    {"ToolUnderDevShm", R"({"tools": [{"name": "shm", "path": "/dev/shm/tool"}]})", "/tools/0/path",
     "outside /proc and /dev"},
    {"ToolCostNegative",
     R"({"tools": [{"name": "python", "path": "/usr/bin/python3", "cost_usd": -0.01}]})",
     "/tools/0/cost_usd",
     "expected an amount in US dollars, a number from 0 to 1000000, got -0.01"},

    // ---- duplicate JSON keys (raw text: a parsed document cannot hold them) ---------------------
    {"DuplicateTopLevelKey",
     R"({"apiVersion": "enclosure/v1", "apiVersion": "enclosure/v1", "metadata": {"name": "m"},
         "tools": [{"name": "t", "path": "/bin/t"}]})",
     "/apiVersion", "key appears more than once in its object", 1, true},
    {"DuplicateKeyInArrayElement",
     R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m"},
         "tools": [{"name": "t", "path": "/bin/t"}],
         "network": {"mode": "filtered", "dns": true, "egress": [
           {"cidr": "10.0.0.0/8", "ports": [1]},
           {"cidr": "10.1.0.0/16", "ports": [2], "ports": [3]}]}})",
     "/network/egress/1/ports", "key appears more than once", 1, true},
    {"DuplicateKeyNeedingEscape",
     R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m", "labels": {"a/b": "1",
         "a/b": "2"}}, "tools": [{"name": "t", "path": "/bin/t"}]})",
     "/metadata/labels/a~1b", "key appears more than once", 1, true},
    {"DuplicateKeySpelledWithEscape",
     R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m"},
         "tools": [{"name": "t", "path": "/bin/t"}], "\u0074ools": []})",
     "/tools", "key appears more than once", 1, true},
    {"DuplicateKeyNestedInArrays",
     R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m"},
         "tools": [{"name": "t", "path": "/bin/t"}, {"name": "u", "path": "/bin/u",
                   "max_calls": 1, "max_calls": 2}]})",
     "/tools/1/max_calls", "key appears more than once", 1, true},

    // ---- ports -----------------------------------------------------------------------------
    {"PortZero", R"({"network": {"egress": [{"host": "api.example.com", "ports": [443, 0]}]}})",
     "/network/egress/0/ports/1", "expected a port 1-65535 or \"a-b\", got 0"},
    {"PortTooLarge", R"({"network": {"egress": [{"host": "api.example.com", "ports": [65536]}]}})",
     "/network/egress/0/ports/0", "expected a port 1-65535 or \"a-b\", got 65536"},
    {"PortRangeReversed",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443]},
                                {"cidr": "10.20.0.0/16", "ports": [1, "100-50"]}]}})",
     "/network/egress/1/ports/1", "expected a range \"a-b\" with a <= b, got \"100-50\""},
    {"PortRangeThreeParts",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": ["1-2-3"]}]}})",
     "/network/egress/0/ports/0", "got \"1-2-3\""},
    {"PortRangeUpperOutOfRange",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": ["1000-70000"]}]}})",
     "/network/egress/0/ports/0", "expected a port 1-65535 or \"a-b\""},
    {"PortNumberAsString",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": ["https"]}]}})",
     "/network/egress/0/ports/0", "got \"https\""},
    {"PortsEmpty", R"({"network": {"egress": [{"host": "api.example.com", "ports": []}]}})",
     "/network/egress/0/ports", "expected a non-empty array of ports"},
    {"PortsMissing", R"({"network": {"egress": [{"host": "api.example.com"}]}})",
     "/network/egress/0/ports", "required key is missing"},

    // ---- CIDRs -----------------------------------------------------------------------------
    {"CidrHostBits",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443]},
                                {"cidr": "10.20.0.1/16", "ports": [5432]}]}})",
     "/network/egress/1/cidr", "a block without host bits (did you mean \"10.20.0.0/16\"?)"},
    {"CidrPrefixTooLong",
     R"({"network": {"egress": [{"host": "api.example.com", "ports": [443]},
                                {"cidr": "10.20.0.0/33", "ports": [5432]}]}})",
     "/network/egress/1/cidr", "expected an IPv4 prefix length of 0 to 32"},
    {"CidrV6PrefixTooLong",
     R"({"network": {"egress": [{"cidr": "2001:db8::/129", "ports": [443]}]}})",
     "/network/egress/0/cidr", "an IPv6 prefix length of 0 to 128"},
    {"CidrPrefixNotNumber", R"({"network": {"egress": [{"cidr": "10.20.0.0/x", "ports": [443]}]}})",
     "/network/egress/0/cidr", "expected an IPv4 or IPv6 block"},
    {"HostAndCidrBoth",
     R"({"network": {"egress": [{"host": "a.example.com", "cidr": "10.0.0.0/8", "ports": [1]}]}})",
     "/network/egress/0", "expected exactly one of \"host\""},
    {"DuplicateDestination",
     R"({"network": {"egress": [{"cidr": "10.0.0.0/8", "ports": [1]},
                                {"cidr": "10.0.0.0/8", "ports": [2]}]}})",
     "/network/egress/1", "same destination and protocol as /network/egress/0"},

    // ---- hosts -----------------------------------------------------------------------------
    {"HostIpv4Literal", R"({"network": {"egress": [{"host": "10.0.0.1", "ports": [443]}]}})",
     "/network/egress/0/host", "expected a DNS name; write addresses as \"cidr\""},
    {"HostIpv6Literal", R"({"network": {"egress": [{"host": "2001:db8::1", "ports": [443]}]}})",
     "/network/egress/0/host", "write addresses as \"cidr\""},
    {"HostShortIpv4Form", R"({"network": {"egress": [{"host": "127.1", "ports": [443]}]}})",
     "/network/egress/0/host", "write addresses as \"cidr\""},
    {"HostUpperCase", R"({"network": {"egress": [{"host": "API.example.com", "ports": [443]}]}})",
     "/network/egress/0/host", "expected a lower-case DNS name, got \"API.example.com\""},
    {"HostWildcardInside",
     R"({"network": {"egress": [{"host": "api.*.example.com", "ports": [443]}]}})",
     "/network/egress/0/host", "'*' only as a whole first label"},
    {"HostWildcardOverTld", R"({"network": {"egress": [{"host": "*.com", "ports": [443]}]}})",
     "/network/egress/0/host", "not over a top-level domain"},
    {"HostTrailingDot",
     R"({"network": {"egress": [{"host": "api.example.com.", "ports": [443]}]}})",
     "/network/egress/0/host", "no trailing dot"},

    // ---- context ---------------------------------------------------------------------------
    {"ContextBadRegex", R"({"context": {"customer_id": {"pattern": "^[0-9$"}}})",
     "/context/customer_id/pattern", "expected a valid ECMAScript regular expression"},
    {"ContextUnanchoredPattern", R"({"context": {"customer_id": {"pattern": "[0-9]+"}}})",
     "/context/customer_id/pattern",
     "expected an anchored regular expression (starting with ^ and ending with $)"},
    {"ContextPatternMissing", R"({"context": {"customer_id": {"pattern": null, "default": "1"}}})",
     "/context/customer_id/pattern", "got nothing"},
    {"ContextBadName", R"({"context": {"1abc": {"pattern": "^a$", "default": "a"}}})",
     "/context/1abc", "expected a variable name of letters, digits and _"},
    {"ContextDefaultRejected", R"({"context": {"customer_id": {"default": "x1"}}})",
     "/context/customer_id/default", "default rejected: value does not match the pattern"},
    {"UndeclaredPlaceholder",
     R"({"filesystem": {"read": ["/usr", "/data/customers/${customer_id}", "/opt/${nope}"]}})",
     "/filesystem/read/2", "undeclared context variable ${nope}; declare it under /context"},
    {"UndeclaredPlaceholderInToolPath",
     R"({"tools": [{"name": "python", "path": "/usr/bin/${interp}"}]})", "/tools/0/path",
     "undeclared context variable ${interp}"},
    {"UnterminatedPlaceholder", R"({"process": {"env": {"set": {"HOME": "/home/${workdir"}}}})",
     "/process/env/set/HOME", "unterminated \"${\"; write ${name}"},
    {"InvalidPlaceholderName", R"({"process": {"env": {"set": {"HOME": "${a-b}"}}}})",
     "/process/env/set/HOME", "\"${a-b}\" is not a valid placeholder"},

    // ---- missing required keys and version -------------------------------------------------
    {"MissingApiVersion", R"({"apiVersion": null})", "/apiVersion",
     "required key is missing; expected \"enclosure/v1\""},
    {"WrongApiVersion", R"({"apiVersion": "enclosure/v2"})", "/apiVersion",
     "this build reads manifests of version \"enclosure/v1\" only, got \"enclosure/v2\""},
    {"MissingMetadata", R"({"metadata": null})", "/metadata", "required key is missing"},
    {"MissingMetadataName", R"({"metadata": {"name": null}})", "/metadata/name",
     "required key is missing"},
    {"BadMetadataName", R"({"metadata": {"name": "-x"}})", "/metadata/name",
     "starting with a letter or digit, got \"-x\""},
    {"MissingRuleId", R"({"rules": [{"after": {"read": ["/usr"]}, "deny": ["network"]}]})",
     "/rules/0/id", "required key is missing"},
    {"MissingRuleAfter", R"({"rules": [{"id": "r", "deny": ["network"]}]})", "/rules/0/after",
     "required key is missing"},
    {"MissingRuleDeny", R"({"rules": [{"id": "r", "after": {"read": ["/usr"]}}]})", "/rules/0/deny",
     "required key is missing"},
    {"EmptyRuleTrigger", R"({"rules": [{"id": "r", "after": {}, "deny": ["network"]}]})",
     "/rules/0/after", "expected at least one trigger"},
    {"UnknownDenial",
     R"({"rules": [{"id": "r", "after": {"read": ["/usr"]}, "deny": ["everything"]}]})",
     "/rules/0/deny/0", "expected \"network\", \"write\", \"exec\""},
    {"MissingUserGid", R"({"process": {"user": {"gid": null}}})", "/process/user/gid",
     "required key is missing; expected an id from 0 to 4294967294"},
    {"MissingUserUidAndGid", R"({"process": {"user": {"uid": null, "gid": null}}})",
     "/process/user/gid", "required key is missing", 2},

    // ---- network consistency ---------------------------------------------------------------
    {"ModeHostWithoutAllowDegraded",
     R"({"network": {"mode": "host", "egress": null, "dns": false}})", "/network/mode",
     "it is accepted only when /enforcement/allow_degraded names \"network\""},
    {"EgressWithModeNone", R"({"network": {"mode": "none", "dns": false}, "rules": null})",
     "/network/egress", "egress rules apply only to mode \"filtered\"; mode is \"none\""},
    {"EgressWithoutMode", R"({"network": {"mode": null, "dns": false}, "rules": null})",
     "/network/egress", "mode is \"none\""},
    {"DnsWithModeNone", R"({"network": {"mode": "none", "egress": null}, "rules": null})",
     "/network/dns", "the enclosure's resolver serves mode \"filtered\" only"},
    {"HostRuleWithoutDns", R"({"network": {"dns": false}})", "/network/egress/0/host",
     "a host rule needs /network/dns true"},

    // ---- syscalls --------------------------------------------------------------------------
    {"SyscallAllowedAndDenied", R"({"syscalls": {"deny": ["ptrace", "bpf"], "allow": ["bpf"]}})",
     "/syscalls/allow/0",
     "\"bpf\" is also denied at /syscalls/deny/1; a system call is either allowed or denied"},
    {"UnknownSyscall", R"({"syscalls": {"deny": ["ptrace", "notasyscall"]}})", "/syscalls/deny/1",
     "expected a system call name of this architecture"},
    {"SyscallListedTwice", R"({"syscalls": {"deny": ["ptrace", "ptrace"]}})", "/syscalls/deny/1",
     "listed twice (also at /syscalls/deny/0)"},
    {"SyscallActionUnknown", R"({"syscalls": {"action": "trap"}})", "/syscalls/action",
     "expected \"errno\" or \"kill\""},

    // ---- composition rules -----------------------------------------------------------------
    {"RuleExecUnknownTool",
     R"({"rules": [{"id": "r", "after": {"exec": ["curl"]}, "deny": ["network"]}]})",
     "/rules/0/after/exec/0", "no tool named \"curl\" under /tools"},
    {"RuleDenyUnknownTool",
     R"({"rules": [{"id": "r", "after": {"exec": ["git"]}, "deny": ["tool:curl"]}]})",
     "/rules/0/deny", "no tool named \"curl\" under /tools"},
    {"RuleDenyUnknownHost",
     R"({"rules": [{"id": "r", "after": {"exec": ["git"]}, "deny": ["host:evil.example"]}]})",
     "/rules/0/deny", "no egress rule for host \"evil.example\""},
    {"RuleConnectUnknownIndex",
     R"({"rules": [{"id": "r", "after": {"connect": [1, 5]}, "deny": ["write"]}]})",
     "/rules/0/after/connect/1", "no egress rule 5 (there are 2)"},
    {"RuleConnectUnknownHost",
     R"({"rules": [{"id": "r", "after": {"connect": ["other.example.com"]}, "deny": ["write"]}]})",
     "/rules/0/after/connect/0", "no egress rule for host \"other.example.com\""},
    {"RuleReadTriggerNotReadable",
     R"({"rules": [{"id": "r", "after": {"read": ["/etc/passwd"]}, "deny": ["network"]}]})",
     "/rules/0/after/read/0", "\"/etc/passwd\" is not readable in the enclosure"},
    {"RuleReadTriggerHidden",
     R"({"rules": [{"id": "r", "after": {"read": ["/data/customers/42/cards/x"]},
                    "deny": ["network"]}]})",
     "/rules/0/after/read/0", "is hidden by /filesystem/hide/0, so this trigger can never fire"},
    {"DuplicateRuleId",
     R"({"rules": [{"id": "r", "after": {"read": ["/usr"]}, "deny": ["network"]},
                   {"id": "r", "after": {"exec": ["git"]}, "deny": ["network"]}]})",
     "/rules/1/id", "duplicate rule id \"r\" (also at /rules/0/id)"},
    {"RuleDenyNetworkWithoutNetwork",
     R"({"network": {"mode": "none", "egress": null, "dns": false}})", "/rules/0/deny",
     "denies \"network\", but the enclosure has none"},
    {"SameRuleTwice",
     R"({"rules": [{"id": "a", "after": {"read": ["/usr"]}, "deny": ["network"]},
                   {"id": "b", "after": {"read": ["/usr"]}, "deny": ["network"]}]})",
     "/rules/1", "same trigger and denial as /rules/0"},

    // ---- filesystem consistency ------------------------------------------------------------
    {"HideNotUnderGrant", R"({"filesystem": {"hide": ["/opt/secret"]}})", "/filesystem/hide/0",
     "\"/opt/secret\" is not under any read, write or tmpfs path"},
    {"HideEqualsGrant", R"({"filesystem": {"hide": ["/tmp"]}})", "/filesystem/hide/0",
     "hides exactly the path granted at /filesystem/tmpfs/0"},
    {"GrantUnderHiddenPath",
     R"({"filesystem": {"read": ["/usr", "/data/customers/${customer_id}",
                                 "/data/customers/${customer_id}/cards/public"]}})",
     "/filesystem/read/2",
     "\"/data/customers/42/cards/public\" lies under the hidden path at /filesystem/hide/0"},
    {"PathGrantedTwice", R"({"filesystem": {"write": ["${workdir}", "/usr"]}})",
     "/filesystem/write/1", "\"/usr\" is also granted at /filesystem/read/0"},
    {"UnixSocketOutsideView", R"({"network": {"unix": ["/run/app.sock"]}})", "/network/unix/0",
     "the socket \"/run/app.sock\" is not inside the enclosure's view"},
    {"UnixSocketHidden", R"({"network": {"unix": ["/data/customers/${customer_id}/cards/s"]}})",
     "/network/unix/0", "is hidden by /filesystem/hide/0"},
    {"CwdOutsideView", R"({"process": {"cwd": "/home/agent"}})", "/process/cwd",
     "\"/home/agent\" is not inside the enclosure's view"},
    {"CwdHidden", R"({"process": {"cwd": "/data/customers/${customer_id}/cards"}})", "/process/cwd",
     "is hidden by /filesystem/hide/0"},
    {"ToolPathHidden",
     R"({"tools": [{"name": "python", "path": "/usr/bin/python3"},
                   {"name": "card", "path": "/data/customers/${customer_id}/cards/tool"}]})",
     "/tools/1/path", "is hidden by /filesystem/hide/0; a tool must be reachable"},
    {"ReadUnderProc", R"({"filesystem": {"read": ["/usr", "/data/customers/${customer_id}",
                                                  "/proc/self"]}})",
     "/filesystem/read/2", "a path outside /proc and /dev"},
    {"TmpfsUnderDev", R"({"filesystem": {"tmpfs": ["/tmp", "/dev/shm"]}})", "/filesystem/tmpfs/1",
     "a path outside /proc and /dev"},
    {"WriteRoot", R"({"filesystem": {"write": ["/"]}, "process": {"cwd": "/"}})",
     "/filesystem/write/0", "a path other than \"/\""},
    {"TmpfsRoot", R"({"filesystem": {"tmpfs": ["/"]}})", "/filesystem/tmpfs/0",
     "a path other than \"/\" (the root of the view is always a fresh tmpfs)"},

    // ---- other sections --------------------------------------------------------------------
    {"BadDegradedLayer", R"({"enforcement": {"allow_degraded": ["landlock", "selinux"]}})",
     "/enforcement/allow_degraded/1", "one of \"bpf\", \"cgroup\", \"landlock\""},
    {"BaselineToleranceBelowOne",
     R"({"baseline": {"profile": "/var/lib/enclosure/p.json", "tolerance": 0.5}})",
     "/baseline/tolerance", "expected a factor from 1.0 to 1000"},
    {"BaselineProfileRelative", R"({"baseline": {"profile": "p.json"}})", "/baseline/profile",
     "expected an absolute path"},
    {"BudgetCostNegative", R"({"budgets": {"cost_usd": -1}})", "/budgets/cost_usd",
     "expected an amount in US dollars"},
    {"BudgetCostSubMicroDollar", R"({"budgets": {"cost_usd": 0.0000001}})", "/budgets/cost_usd",
     "expected an amount in whole millionths of a dollar"},
    {"ToolCostSubMicroDollar",
     R"({"tools": [{"name": "python", "path": "/usr/bin/python3", "cost_usd": 0.0012345}]})",
     "/tools/0/cost_usd", "whole millionths of a dollar"},
    {"EnvSetEnclosureKey", R"({"process": {"env": {"set": {"ENCLOSURE_METER_FD": "9"}}}})",
     "/process/env/set/ENCLOSURE_METER_FD",
     "expected a name outside ENCLOSURE_*, which the enclosure itself sets as the key"},
    {"EnvSetValueWithNul", R"({"process": {"env": {"set": {"HOME": "/a\u0000b"}}}})",
     "/process/env/set/HOME", "expected a value without NUL bytes"},
    {"EnvSetBadName", R"({"process": {"env": {"set": {"1X": "v"}}}})", "/process/env/set/1X",
     "an environment variable name"},
    {"EnvPassEnclosureName", R"({"process": {"env": {"pass": ["PATH", "ENCLOSURE_X"]}}})",
     "/process/env/pass/1", "a name outside ENCLOSURE_*"},
    {"UidOutOfRange", R"({"process": {"user": {"uid": 4294967295}}})", "/process/user/uid",
     "expected an id from 0 to 4294967294, got 4294967295"},
    {"GidNegative", R"({"process": {"user": {"gid": -1}}})", "/process/user/gid",
     "expected an id from 0 to 4294967294, got -1"},
    {"ProcessesZero", R"({"budgets": {"processes": 0}})", "/budgets/processes",
     "expected a positive integer, got 0"},

    // ---- documents that are not manifests --------------------------------------------------
    {"SyntaxError", R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m"},})", "",
     "not valid JSON: parse error at line 1", 1, true},
    {"EmptyText", "", "", "not valid JSON", 1, true},
    {"TrailingGarbage", R"({"apiVersion": "enclosure/v1"} x)", "", "not valid JSON", 1, true},
    {"NumberOverflow",
     R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m", "revision": 1e400},
         "tools": [{"name": "t", "path": "/bin/t"}]})",
     "", "not valid JSON: number overflow parsing '1e400'", 1, true},
    {"TopLevelArray", R"([{"apiVersion": "enclosure/v1"}])", "",
     "expected a JSON object at the top level, got [", 1, true},
    {"TopLevelString", R"("enclosure/v1")", "", "expected a JSON object at the top level", 1, true},
};

INSTANTIATE_TEST_SUITE_P(Malformed, ManifestError, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ManifestErrors, BaseManifestIsValid) {
  policy::LoadResult r = policy::load_manifest(kBase);
  EXPECT_TRUE(r.diagnostics.ok()) << render(r.diagnostics);
  ASSERT_TRUE(r.manifest.has_value());
  EXPECT_EQ(r.manifest->metadata.name, "base");
  EXPECT_EQ(r.manifest->process.cwd, "/srv/tasks/scratch");
  EXPECT_EQ(r.manifest->filesystem.read.at(1), "/data/customers/42");
  EXPECT_EQ(r.manifest->network.egress.at(1).ports.size(), 2u);
  EXPECT_EQ(r.manifest->tools.at(1).cost_micro_usd, 5000u);
}

// Every case must be a one-point change of a valid manifest, else it would not show that the
// error it names is detected: patching with an empty object must keep the manifest valid.
TEST(ManifestErrors, EmptyPatchKeepsBaseValid) {
  policy::LoadResult r = policy::load_manifest(patched("{}"));
  EXPECT_TRUE(r.manifest.has_value()) << render(r.diagnostics);
}

TEST(ManifestErrors, AllErrorsOfAFileAreReportedAtOnce) {
  std::string text = patched(R"({
    "metadata": {"revision": -1},
    "tols": [],
    "filesystem": {"read": ["/usr", "relative", "/data/customers/${customer_id}"]},
    "network": {"egress": [{"host": "api.example.com", "ports": [443]},
                           {"cidr": "10.20.0.1/16", "ports": [0, "9-8"]}]},
    "budgets": {"wall_clock": "0s", "memory": "2XB"},
    "syscalls": {"deny": ["ptrace", "nosuchcall"]},
    "enforcement": {"allow_degraded": ["apparmor"]},
    "on_violation": "ignore"
  })");
  policy::LoadResult r = policy::load_manifest(text);
  EXPECT_FALSE(r.manifest.has_value());
  const std::vector<std::string> expected{"/metadata/revision",
                                          "/tols",
                                          "/filesystem/read/1",
                                          "/network/egress/1/cidr",
                                          "/network/egress/1/ports/0",
                                          "/network/egress/1/ports/1",
                                          "/budgets/wall_clock",
                                          "/budgets/memory",
                                          "/syscalls/deny/1",
                                          "/enforcement/allow_degraded/0",
                                          "/on_violation"};
  std::vector<std::string> got;
  for (const policy::Diagnostic& e : r.diagnostics.errors())
    got.push_back(e.path);
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = expected;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want) << render(r.diagnostics);
}

TEST(ManifestErrors, ContextErrorsAndSectionErrorsTogether) {
  std::string text = patched(R"({
    "context": {"customer_id": {"pattern": "[0-9]+"}},
    "tools": [{"name": "python", "path": "python3"}],
    "audit": {"files": "yes"}
  })");
  policy::LoadResult r = policy::load_manifest(text);
  std::vector<std::string> got;
  for (const policy::Diagnostic& e : r.diagnostics.errors())
    got.push_back(e.path);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"/audit/files", "/context/customer_id/pattern",
                                           "/tools/0/path"}))
      << render(r.diagnostics);
}

TEST(ManifestErrors, ConsistencyErrorsAreAllReported) {
  std::string text = patched(R"({
    "process": {"cwd": "/home"},
    "filesystem": {"hide": ["/opt/x", "/tmp"]},
    "network": {"dns": false},
    "rules": [{"id": "r", "after": {"exec": ["curl"], "connect": [9]}, "deny": ["tool:wget"]}]
  })");
  policy::LoadResult r = policy::load_manifest(text);
  std::vector<std::string> got;
  for (const policy::Diagnostic& e : r.diagnostics.errors())
    got.push_back(e.path);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(
      got, (std::vector<std::string>{
               "/filesystem/hide/0", "/filesystem/hide/1", "/network/egress/0/host", "/process/cwd",
               "/rules/0/after/connect/0", "/rules/0/after/exec/0", "/rules/0/deny"}))
      << render(r.diagnostics);
}

TEST(ManifestErrors, HostModeAcceptedWhenNetworkMayDegrade) {
  std::string text = patched(R"({"network": {"mode": "host", "egress": null, "dns": false},
                                 "enforcement": {"allow_degraded": ["network"]}})");
  policy::LoadResult r = policy::load_manifest(text);
  EXPECT_TRUE(r.manifest.has_value()) << render(r.diagnostics);
}

TEST(ManifestErrors, DeeplyNestedDocumentIsRefusedNotCrashed) {
  std::string deep(100000, '[');
  std::string text = R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m"},
    "tools": [{"name": "t", "path": "/bin/t"}], "filesystem": {"read": )" +
                     deep + std::string(100000, ']') + "}}";
  policy::LoadResult r = policy::load_manifest(text);
  EXPECT_FALSE(r.manifest.has_value());
  ASSERT_EQ(r.diagnostics.errors().size(), 1u) << render(r.diagnostics);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "");
  EXPECT_NE(r.diagnostics.errors()[0].message.find("nested more than"), std::string::npos);
}

TEST(ManifestErrors, LongValuesInMessagesAreCutAtCharacterBoundaries) {
  // 40 two-byte characters: the cut at 72 bytes of the quoted rendering would split one.
  std::string name;
  for (int i = 0; i < 40; ++i)
    name += "\xc3\xa9";
  json doc = json::parse(kBase);
  doc["metadata"]["name"] = name;
  policy::LoadResult r = policy::load_manifest(doc.dump());
  ASSERT_EQ(r.diagnostics.errors().size(), 1u) << render(r.diagnostics);
  const std::string& message = r.diagnostics.errors()[0].message;
  EXPECT_NE(message.find("..."), std::string::npos) << message;
  // The message must be valid UTF-8: a strict JSON serialisation would throw otherwise.
  EXPECT_NO_THROW((void)json(message).dump(-1, ' ', false, json::error_handler_t::strict))
      << message;
}

TEST(ManifestErrors, FormatDiagnostic) {
  EXPECT_EQ(policy::format_diagnostic("m.json", {"/tools/0/path", "expected x"}),
            "m.json: /tools/0/path: expected x");
  EXPECT_EQ(policy::format_diagnostic("m.json", {"", "not valid JSON"}), "m.json: not valid JSON");
}

TEST(ManifestErrors, FormatDiagnosticKeepsOneLine) {
  // A key or tool name may hold control characters; the line must not break or carry escape
  // sequences to the terminal.
  EXPECT_EQ(policy::format_diagnostic("m.json", {"/a\nb", "no tool named \"\x1b[2J\""}),
            "m.json: /a\\u000ab: no tool named \"\\u001b[2J\"");
  EXPECT_EQ(policy::format_diagnostic("m.json", {"/x", "tab\there\x7f"}),
            "m.json: /x: tab\\u0009here\\u007f");
  policy::LoadResult r = policy::load_manifest(patched(R"({"bad\u001bkey": 1})"));
  ASSERT_EQ(r.diagnostics.errors().size(), 1u) << render(r.diagnostics);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/bad\x1bkey");
  std::string line = policy::format_diagnostic("m.json", r.diagnostics.errors()[0]);
  EXPECT_EQ(line.rfind("m.json: /bad\\u001bkey: unknown key", 0), 0u) << line;
}

TEST(ManifestErrors, PointerJoinEscapes) {
  EXPECT_EQ(policy::pointer_join("/a", "b/c~d"), "/a/b~1c~0d");
  EXPECT_EQ(policy::pointer_join("", "x"), "/x");
  EXPECT_EQ(policy::pointer_join("/list", size_t{12}), "/list/12");
}

// ---- the command line ------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "enclosure-h1-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string write(const std::string& name, const std::string& content) const {
    std::string file = (path_ / name).string();
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string slurp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs `enclosure ARGS` through the shell with standard error captured in a file.
RunResult run_enclosure(const TempDir& dir, const std::vector<std::string>& args) {
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s)
      q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  std::string err_file = (dir.path() / "stderr.txt").string();
  std::string command = quote(ENCLOSURE_BINARY);
  for (const std::string& a : args)
    command += " " + quote(a);
  command += " 2>" + quote(err_file);
  RunResult r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
    r.out.append(buf, n);
  int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = slurp(err_file);
  return r;
}

TEST(CheckCommand, InvalidManifestExitsTwoWithPointerLines) {
  TempDir dir;
  std::string file = dir.write(
      "bad.json", patched(R"({"network": {"egress": [{"host": "api.example.com", "ports": [443]},
                                                      {"cidr": "10.0.0.0/8", "ports": [0]}]},
                              "budgets": {"wall_clock": "5min"}})"));
  RunResult r = run_enclosure(dir, {"check", file});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_NE(r.err.find(file + ": /network/egress/1/ports/0: expected a port 1-65535"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(file + ": /budgets/wall_clock: expected a duration unit"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("valid"), std::string::npos) << r.out;
}

TEST(CheckCommand, SyntaxErrorIsADocumentLevelLine) {
  TempDir dir;
  std::string file = dir.write("syntax.json", "{\"apiVersion\": ");
  RunResult r = run_enclosure(dir, {"check", file});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err.rfind(file + ": not valid JSON: ", 0), 0u) << r.err;
}

TEST(CheckCommand, ValidManifestExitsZeroWithNameRevisionDigest) {
  TempDir dir;
  std::string file = dir.write("good.json", kBase);
  RunResult r = run_enclosure(dir, {"check", file});
  EXPECT_EQ(r.status, 0) << r.err;
  policy::LoadResult loaded = policy::load_manifest(kBase);
  ASSERT_TRUE(loaded.manifest.has_value());
  EXPECT_NE(r.out.find("base"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("revision 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(loaded.manifest->digest), std::string::npos)
      << r.out << " vs " << loaded.manifest->digest;
  EXPECT_EQ(r.err, "");
}

TEST(CheckCommand, OneInvalidFileAmongValidOnesExitsTwo) {
  TempDir dir;
  std::string good = dir.write("good.json", kBase);
  std::string bad = dir.write("bad.json", patched(R"({"apiVersion": "enclosure/v9"})"));
  RunResult r = run_enclosure(dir, {"check", good, bad});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find(good), std::string::npos) << r.out;
  EXPECT_NE(r.err.find(bad + ": /apiVersion: this build reads manifests of version "
                             "\"enclosure/v1\" only"),
            std::string::npos)
      << r.err;
}

TEST(CheckCommand, ContextValueChangesDigest) {
  TempDir dir;
  std::string file = dir.write("good.json", kBase);
  RunResult a = run_enclosure(dir, {"check", file});
  RunResult b = run_enclosure(dir, {"check", "--context", "customer_id=7", file});
  EXPECT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(b.status, 0) << b.err;
  EXPECT_NE(a.out, b.out);
  RunResult c = run_enclosure(dir, {"check", "--context", "customer_id=../1", file});
  EXPECT_EQ(c.status, 2);
  EXPECT_NE(c.err.find(file + ": /context/customer_id: --context customer_id: "), std::string::npos)
      << c.err;
}

TEST(CheckCommand, MalformedContextFileExitsTwoNotAbort) {
  TempDir dir;
  std::string file = dir.write("good.json", kBase);
  // Not a string value, and a number beyond a double: refused with a message, never a crash.
  std::string context = dir.write("context.json", R"({"customer_id": 1e400})");
  RunResult r = run_enclosure(dir, {"check", "--context-file", context, file});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find(context), std::string::npos) << r.err;
  std::string wrong_type = dir.write("wrong.json", R"({"customer_id": 7})");
  RunResult t = run_enclosure(dir, {"check", "--context-file", wrong_type, file});
  EXPECT_EQ(t.status, 2) << t.err;
  EXPECT_NE(t.err.find(wrong_type + ": /customer_id: expected a string value"), std::string::npos)
      << t.err;
}

}  // namespace
