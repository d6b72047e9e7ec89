// The digest of a manifest: SHA-256 of its canonical JSON (keys sorted, no insignificant white
// space, after context expansion), the same for every spelling of one document and different
// as soon as any permission differs.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <string>

#include "policy/digest.h"
#include "policy/load.h"

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Egress by address only, so that "dns" can change without making the manifest invalid.
constexpr const char* kManifest = R"({
  "apiVersion": "enclosure/v1",
  "metadata": {"name": "digest", "revision": 1},
  "context": {"customer_id": {"pattern": "^[0-9]{1,12}$", "default": "42"}},
  "process": {"cwd": "/work", "env": {"pass": ["PATH"]}},
  "filesystem": {"read": ["/usr", "/data/customers/${customer_id}"], "write": ["/work"],
                 "tmpfs": ["/tmp"], "hide": ["/data/customers/${customer_id}/cards"]},
  "tools": [{"name": "python", "path": "/usr/bin/python3", "max_calls": 20},
            {"name": "git", "path": "/usr/bin/git", "cost_usd": 0.005}],
  "network": {"mode": "filtered", "dns": true,
              "egress": [{"cidr": "10.20.0.0/16", "ports": [5432, "6000-6010"]}]},
  "syscalls": {"profile": "default", "deny": ["ptrace"], "action": "errno"},
  "budgets": {"wall_clock": "5m", "memory": "2GiB", "cost_usd": 0.5},
  "rules": [{"id": "no-exfil", "after": {"read": ["/data/customers/${customer_id}"]},
             "deny": ["network"]}],
  "audit": {"files": true},
  "baseline": {"profile": "/var/lib/enclosure/digest.json", "tolerance": 3},
  "on_violation": "deny",
  "enforcement": {"allow_degraded": []}
})";

std::string errors_of(const policy::LoadResult& r) {
  std::string out;
  for (const auto& e : r.diagnostics.errors())
    out += e.path + ": " + e.message + "\n";
  return out;
}

std::string digest_of(const std::string& text, const policy::ContextValues& context = {}) {
  policy::LoadResult r = policy::load_manifest(text, context);
  EXPECT_TRUE(r.manifest.has_value()) << errors_of(r) << text;
  return r.manifest ? r.manifest->digest : std::string("<invalid>");
}

std::string patched(const std::string& patch) {
  json doc = json::parse(kManifest);
  doc.merge_patch(json::parse(patch));
  return doc.dump();
}

// The same document with every object's members in reverse order.
ordered_json reversed(const ordered_json& v) {
  if (v.is_object()) {
    ordered_json out = ordered_json::object();
    std::vector<std::pair<std::string, ordered_json>> members;
    for (const auto& [key, value] : v.items())
      members.emplace_back(key, reversed(value));
    for (auto it = members.rbegin(); it != members.rend(); ++it)
      out[it->first] = it->second;
    return out;
  }
  if (v.is_array()) {
    ordered_json out = ordered_json::array();
    for (const auto& item : v)
      out.push_back(reversed(item));
    return out;
  }
  return v;
}

TEST(Digest, FormatIsSha256PrefixAnd64LowerHex) {
  std::string d = digest_of(kManifest);
  EXPECT_TRUE(std::regex_match(d, std::regex("^sha256:[0-9a-f]{64}$"))) << d;
}

TEST(Digest, IsSha256OfTheCanonicalText) {
  policy::LoadResult r = policy::load_manifest(kManifest);
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  const policy::Manifest& m = *r.manifest;
  EXPECT_EQ(m.digest, "sha256:" + policy::sha256_hex(m.canonical));
  EXPECT_EQ(m.canonical, policy::canonical_json(m.document));
  EXPECT_EQ(m.digest, policy::manifest_digest(m.document));
}

TEST(Digest, Sha256KnownAnswers) {
  EXPECT_EQ(policy::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(policy::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(policy::sha256_hex(std::string("a\0b", 3)),
            "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
}

TEST(Digest, InvariantUnderKeyOrder) {
  ordered_json original = ordered_json::parse(kManifest);
  std::string forward = original.dump();
  std::string backward = reversed(original).dump();
  ASSERT_NE(forward, backward);  // the texts really differ
  EXPECT_EQ(digest_of(forward), digest_of(backward));
}

TEST(Digest, InvariantUnderWhiteSpace) {
  ordered_json original = ordered_json::parse(kManifest);
  std::string compact = original.dump();
  std::string indented = original.dump(8);
  std::string tabs = original.dump(1, '\t');
  std::string crlf = std::regex_replace(indented, std::regex("\n"), "\r\n   ");
  EXPECT_EQ(digest_of(compact), digest_of(kManifest));
  EXPECT_EQ(digest_of(indented), digest_of(kManifest));
  EXPECT_EQ(digest_of(tabs), digest_of(kManifest));
  EXPECT_EQ(digest_of(crlf), digest_of(kManifest));
}

TEST(Digest, InvariantUnderEscapesAndNumberSpelling) {
  // "\u0070ython" is "python"; 0.50 and 5e-1 are 0.5; 3.0 and 3 are one number.
  std::string escaped =
      std::regex_replace(std::string(kManifest), std::regex("\"python\""), "\"\\u0070ython\"");
  ASSERT_NE(escaped, kManifest);
  EXPECT_EQ(digest_of(escaped), digest_of(kManifest));
  EXPECT_EQ(digest_of(patched(R"({"budgets": {"cost_usd": 0.50}})")), digest_of(kManifest));
  EXPECT_EQ(digest_of(patched(R"({"budgets": {"cost_usd": 5e-1}})")), digest_of(kManifest));
  EXPECT_EQ(digest_of(patched(R"({"baseline": {"tolerance": 3.0}})")), digest_of(kManifest));
  EXPECT_EQ(digest_of(patched(R"({"baseline": {"tolerance": 30e-1}})")), digest_of(kManifest));
}

TEST(Digest, DefaultAndEqualGivenValueAgree) {
  EXPECT_EQ(digest_of(kManifest, {{"customer_id", "42"}}), digest_of(kManifest));
}

TEST(Digest, ChangesWithEverySingleFieldChange) {
  const std::map<std::string, std::string> kChanges{
      {"read path", R"({"filesystem": {"read": ["/opt", "/data/customers/${customer_id}"]}})"},
      {"write path", R"({"filesystem": {"write": ["/work2"]}, "process": {"cwd": "/work2"}})"},
      {"hide path", R"({"filesystem": {"hide": ["/data/customers/${customer_id}/keys"]}})"},
      {"port",
       R"({"network": {"egress": [{"cidr": "10.20.0.0/16", "ports": [5433, "6000-6010"]}]}})"},
      {"port range",
       R"({"network": {"egress": [{"cidr": "10.20.0.0/16", "ports": [5432, "6000-6011"]}]}})"},
      {"cidr",
       R"({"network": {"egress": [{"cidr": "10.21.0.0/16", "ports": [5432, "6000-6010"]}]}})"},
      {"protocol",
       R"({"network": {"egress": [{"cidr": "10.20.0.0/16", "ports": [5432, "6000-6010"], "protocol": "udp"}]}})"},
      {"budget wall_clock", R"({"budgets": {"wall_clock": "6m"}})"},
      {"budget memory", R"({"budgets": {"memory": "3GiB"}})"},
      {"budget cost", R"({"budgets": {"cost_usd": 0.51}})"},
      {"tool max_calls",
       R"({"tools": [{"name": "python", "path": "/usr/bin/python3", "max_calls": 21}, {"name": "git", "path": "/usr/bin/git", "cost_usd": 0.005}]})"},
      {"tool cost",
       R"({"tools": [{"name": "python", "path": "/usr/bin/python3", "max_calls": 20}, {"name": "git", "path": "/usr/bin/git", "cost_usd": 0.006}]})"},
      {"tool path",
       R"({"tools": [{"name": "python", "path": "/usr/bin/python3.12", "max_calls": 20}, {"name": "git", "path": "/usr/bin/git", "cost_usd": 0.005}]})"},
      {"dns", R"({"network": {"dns": false}})"},
      {"rule denial",
       R"({"rules": [{"id": "no-exfil", "after": {"read": ["/data/customers/${customer_id}"]}, "deny": ["write"]}]})"},
      {"rule trigger",
       R"({"rules": [{"id": "no-exfil", "after": {"exec": ["git"]}, "deny": ["network"]}]})"},
      {"syscalls.deny", R"({"syscalls": {"deny": ["ptrace", "bpf"]}})"},
      {"syscalls.action", R"({"syscalls": {"action": "kill"}})"},
      {"syscalls.profile", R"({"syscalls": {"profile": "strict"}})"},
      {"on_violation", R"({"on_violation": "kill"})"},
      {"allow_degraded", R"({"enforcement": {"allow_degraded": ["bpf"]}})"},
      {"audit", R"({"audit": {"files": false}})"},
      {"baseline tolerance", R"({"baseline": {"tolerance": 4}})"},
      {"env pass", R"({"process": {"env": {"pass": ["PATH", "LANG"]}}})"},
      {"revision", R"({"metadata": {"revision": 2}})"},
  };
  std::map<std::string, std::string> seen{{digest_of(kManifest), "original"}};
  for (const auto& [what, patch] : kChanges) {
    std::string d = digest_of(patched(patch));
    auto [it, inserted] = seen.emplace(d, what);
    EXPECT_TRUE(inserted) << what << " gives the same digest as " << it->second;
  }
  EXPECT_EQ(seen.size(), kChanges.size() + 1);
}

TEST(Digest, ChangesWithAContextValue) {
  std::string base = digest_of(kManifest);
  std::string other = digest_of(kManifest, {{"customer_id", "43"}});
  EXPECT_NE(base, other);
  EXPECT_NE(digest_of(patched(R"({"context": {"customer_id": {"default": "7"}}})")), base);
}

TEST(Digest, CanonicalTextIsExpandedSortedAndCompact) {
  policy::LoadResult r = policy::load_manifest(kManifest);
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  const std::string& c = r.manifest->canonical;
  EXPECT_EQ(c.find("${customer_id}"), std::string::npos);
  EXPECT_NE(c.find("\"/data/customers/42\""), std::string::npos);
  EXPECT_EQ(c.find(' '), std::string::npos);
  EXPECT_EQ(c.find('\n'), std::string::npos);
  // Top-level keys in byte order.
  size_t last = 0;
  for (const char* key :
       {"\"apiVersion\"", "\"audit\"", "\"baseline\"", "\"budgets\"", "\"context\"",
        "\"enforcement\"", "\"filesystem\"", "\"metadata\"", "\"network\"", "\"on_violation\"",
        "\"process\"", "\"rules\"", "\"syscalls\"", "\"tools\""}) {
    size_t pos = c.find(key);
    ASSERT_NE(pos, std::string::npos) << key;
    EXPECT_GT(pos, last == 0 ? 0 : last) << key;
    last = pos;
  }
  EXPECT_EQ(c.rfind("{\"apiVersion\":\"enclosure/v1\",\"audit\":{\"files\":true},", 0), 0u) << c;
}

TEST(Digest, CanonicalJsonExactText) {
  json doc = json::parse(R"({
    "b": 1, "a": [3, 2.5, {"d": true, "c": null}], "\u00e9": "x/y", "Z": "tab\there",
    "neg": -7, "f": 3.0, "big": 1e300, "zero": -0.0, "ctl": "\u0001"
  })");
  EXPECT_EQ(policy::canonical_json(doc),
            "{\"Z\":\"tab\\there\",\"a\":[3,2.5,{\"c\":null,\"d\":true}],\"b\":1,"
            "\"big\":1e+300,\"ctl\":\"\\u0001\",\"f\":3,\"neg\":-7,\"zero\":0,"
            "\"\xc3\xa9\":\"x/y\"}");
}

TEST(Digest, CanonicalJsonDoesNotChangeTheDocument) {
  json doc = json::parse(R"({"f": 3.0})");
  (void)policy::canonical_json(doc);
  EXPECT_TRUE(doc["f"].is_number_float());
}

TEST(Digest, TemplateDigestIsStableAndKeepsPlaceholders) {
  std::string text = patched(R"({"context": {"customer_id": {"default": null}}})");
  policy::LoadOptions options;
  options.allow_unresolved = true;
  policy::LoadResult a = policy::load_manifest(text, {}, options);
  policy::LoadResult b = policy::load_manifest(text, {}, options);
  ASSERT_TRUE(a.manifest.has_value()) << errors_of(a);
  ASSERT_TRUE(b.manifest.has_value());
  EXPECT_EQ(a.manifest->digest, b.manifest->digest);
  EXPECT_NE(a.manifest->canonical.find("/data/customers/${customer_id}"), std::string::npos);
  EXPECT_NE(a.manifest->digest, digest_of(kManifest));
}

}  // namespace
