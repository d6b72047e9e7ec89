// Keeps policy/manifest.schema.json honest: its keys are exactly those the parser accepts, and a
// small validator (the subset of JSON Schema the file uses) agrees with policy::load_manifest on
// the examples and on systematic mutations of a manifest that uses every key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/load.h"

namespace {

using nlohmann::json;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const json& manifest_schema() {
  static const json kSchema = json::parse(
      read_file(std::filesystem::path(ENCLOSURE_SOURCE_DIR) / "policy" / "manifest.schema.json"));
  return kSchema;
}

// ---- a validator for the subset of JSON Schema 2020-12 the manifest schema uses -------------

// Keywords with a validation meaning that SchemaValidator implements.
const std::set<std::string>& validation_keywords() {
  static const std::set<std::string> kKeywords{
      "$ref",          "type",    "enum",       "pattern",     "minLength",
      "minimum",       "maximum", "properties", "required",    "additionalProperties",
      "propertyNames", "items",   "minItems",   "uniqueItems", "oneOf",
      "anyOf"};
  return kKeywords;
}
// Keywords without a validation meaning (annotations and containers).
const std::set<std::string>& annotation_keywords() {
  static const std::set<std::string> kKeywords{"$schema",     "$id",     "$defs",   "title",
                                               "description", "default", "$comment"};
  return kKeywords;
}

class SchemaValidator {
 public:
  explicit SchemaValidator(const json& root) : root_(root) {}

  // Every violation as "POINTER: what"; empty when the instance is valid.
  std::vector<std::string> validate(const json& instance) const {
    std::vector<std::string> errors;
    check(root_, instance, "", errors);
    return errors;
  }
  bool valid(const json& instance) const { return validate(instance).empty(); }

 private:
  const json& resolve(const std::string& ref) const {
    if (ref.empty() || ref[0] != '#') throw std::runtime_error("unsupported $ref " + ref);
    return root_.at(json::json_pointer(ref.substr(1)));
  }

  const std::regex& regex(const std::string& pattern) const {
    auto it = regexes_.find(pattern);
    if (it == regexes_.end()) {
      it = regexes_.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
    }
    return it->second;
  }

  static bool has_type(const json& v, const std::string& type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "boolean") return v.is_boolean();
    if (type == "null") return v.is_null();
    if (type == "number") return v.is_number();
    if (type == "integer") return v.is_number_integer();
    throw std::runtime_error("unknown type " + type);
  }

  static long double number(const json& v) {
    if (v.is_number_unsigned()) return static_cast<long double>(v.get<uint64_t>());
    if (v.is_number_integer()) return static_cast<long double>(v.get<int64_t>());
    return static_cast<long double>(v.get<double>());
  }

  static size_t code_points(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s)
      n += (c & 0xC0) != 0x80;
    return n;
  }

  void check(const json& schema, const json& v, const std::string& at,
             std::vector<std::string>& errors) const {
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) errors.push_back(at + ": not allowed");
      return;
    }
    for (const auto& [keyword, value] : schema.items()) {
      if (!validation_keywords().count(keyword) && !annotation_keywords().count(keyword)) {
        throw std::runtime_error("unsupported keyword " + keyword);
      }
      (void)value;
    }
    auto fail = [&](const std::string& what) { errors.push_back(at + ": " + what); };
    if (schema.contains("$ref")) check(resolve(schema["$ref"]), v, at, errors);
    if (schema.contains("type")) {
      const json& t = schema["type"];
      bool ok = false;
      if (t.is_string()) {
        ok = has_type(v, t.get<std::string>());
      } else {
        for (const json& one : t)
          ok = ok || has_type(v, one.get<std::string>());
      }
      if (!ok) fail("expected type " + t.dump() + ", got " + v.dump());
    }
    if (schema.contains("enum")) {
      const json& e = schema["enum"];
      if (std::find(e.begin(), e.end(), v) == e.end()) fail("not one of " + e.dump());
    }
    if (v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      if (schema.contains("pattern") && !std::regex_search(s, regex(schema["pattern"]))) {
        fail("does not match " + schema["pattern"].get<std::string>());
      }
      if (schema.contains("minLength") && code_points(s) < schema["minLength"].get<size_t>()) {
        fail("shorter than " + schema["minLength"].dump());
      }
    }
    if (v.is_number()) {
      if (schema.contains("minimum") && number(v) < number(schema["minimum"])) {
        fail("below minimum " + schema["minimum"].dump());
      }
      if (schema.contains("maximum") && number(v) > number(schema["maximum"])) {
        fail("above maximum " + schema["maximum"].dump());
      }
    }
    if (v.is_object()) {
      static const json kNoProperties = json::object();
      const json& properties = schema.contains("properties") ? schema["properties"] : kNoProperties;
      if (schema.contains("required")) {
        for (const json& key : schema["required"]) {
          if (!v.contains(key.get<std::string>())) fail("missing " + key.get<std::string>());
        }
      }
      for (const auto& [key, member] : v.items()) {
        std::string member_at = at + "/" + key;
        if (schema.contains("propertyNames"))
          check(schema["propertyNames"], key, member_at, errors);
        if (properties.contains(key)) {
          check(properties[key], member, member_at, errors);
        } else if (schema.contains("additionalProperties")) {
          check(schema["additionalProperties"], member, member_at, errors);
        }
      }
    }
    if (v.is_array()) {
      if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>()) {
        fail("fewer than " + schema["minItems"].dump() + " items");
      }
      if (schema.contains("uniqueItems") && schema["uniqueItems"].get<bool>()) {
        for (size_t i = 0; i < v.size(); ++i) {
          for (size_t k = i + 1; k < v.size(); ++k) {
            if (v[i] == v[k])
              fail("items " + std::to_string(i) + " and " + std::to_string(k) + " are equal");
          }
        }
      }
      if (schema.contains("items")) {
        for (size_t i = 0; i < v.size(); ++i) {
          check(schema["items"], v[i], at + "/" + std::to_string(i), errors);
        }
      }
    }
    auto passing = [&](const json& branches) {
      size_t n = 0;
      for (const json& b : branches) {
        std::vector<std::string> sub;
        check(b, v, at, sub);
        n += sub.empty();
      }
      return n;
    };
    if (schema.contains("anyOf") && passing(schema["anyOf"]) == 0) fail("matches no anyOf branch");
    if (schema.contains("oneOf")) {
      size_t n = passing(schema["oneOf"]);
      if (n != 1) fail("matches " + std::to_string(n) + " oneOf branches instead of one");
    }
  }

  const json& root_;
  mutable std::map<std::string, std::regex> regexes_;
};

// Every sub-schema of `schema` (following the keywords that hold schemas), with `visit`.
void each_subschema(const json& schema, const std::function<void(const json&)>& visit) {
  if (!schema.is_object()) return;
  visit(schema);
  for (const char* key : {"properties", "$defs"}) {
    if (schema.contains(key)) {
      for (const auto& [name, sub] : schema[key].items())
        each_subschema(sub, visit);
    }
  }
  for (const char* key : {"additionalProperties", "propertyNames", "items"}) {
    if (schema.contains(key)) each_subschema(schema[key], visit);
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (schema.contains(key)) {
      for (const json& sub : schema[key])
        each_subschema(sub, visit);
    }
  }
}

// Object pointer (array items as "*") -> property names, as the schema describes them; objects
// whose keys are free are listed with "*". `objects` receives the schema nodes of each pointer.
struct SchemaKeys {
  std::map<std::string, std::set<std::string>> keys;
  std::map<std::string, std::vector<const json*>> objects;
};

void collect_keys(const json& root, const json& schema, const std::string& at, SchemaKeys& out,
                  int depth = 0) {
  ASSERT_LT(depth, 32) << "schema nesting too deep at " << at;
  if (!schema.is_object()) return;
  if (schema.contains("$ref")) {
    collect_keys(root, root.at(json::json_pointer(schema["$ref"].get<std::string>().substr(1))), at,
                 out, depth + 1);
  }
  if (schema.value("type", "") == "object") out.objects[at].push_back(&schema);
  if (schema.contains("properties")) {
    for (const auto& [name, sub] : schema["properties"].items()) {
      out.keys[at].insert(name);
      collect_keys(root, sub, at + "/" + name, out, depth + 1);
    }
  }
  if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
    out.keys[at].insert("*");
    collect_keys(root, schema["additionalProperties"], at + "/*", out, depth + 1);
  }
  if (schema.contains("items")) collect_keys(root, schema["items"], at + "/*", out, depth + 1);
  for (const char* key : {"anyOf", "oneOf"}) {
    if (schema.contains(key)) {
      for (const json& sub : schema[key])
        collect_keys(root, sub, at, out, depth + 1);
    }
  }
}

bool parser_accepts(const json& manifest) {
  return policy::load_manifest(manifest.dump(), {}, {.allow_unresolved = true})
      .manifest.has_value();
}

std::string parser_errors(const json& manifest) {
  policy::LoadResult result =
      policy::load_manifest(manifest.dump(), {}, {.allow_unresolved = true});
  std::string out;
  for (const policy::Diagnostic& d : result.diagnostics.errors()) {
    out += d.path + ": " + d.message + "\n";
  }
  return out;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines)
    out += l + "\n";
  return out;
}

// A manifest that uses every key the parser accepts (no placeholders, so that each mutation's
// verdict depends on the mutation alone).
json full_manifest() {
  return json::parse(R"({
    "apiVersion": "enclosure/v1",
    "metadata": {"name": "full", "revision": 3, "approved_by": "sec@example.com",
                 "reason": "CHG-1: every key", "labels": {"team": "platform"}},
    "context": {"task": {"pattern": "^[a-z]+$", "default": "x"}},
    "process": {"cwd": "/usr/local/work",
                "env": {"pass": ["PATH"], "set": {"HOME": "/tmp"}},
                "user": {"uid": 1000, "gid": 1000}},
    "filesystem": {"read": ["/usr"], "write": ["/usr/local/work"], "tmpfs": ["/tmp"],
                   "hide": ["/usr/local/work/secret"]},
    "tools": [{"name": "sh", "path": "/usr/bin/sh", "max_calls": 5, "cost_usd": 0.25},
              {"name": "helper", "path": "/opt/helper"},
              {"name": "extra", "path": "/opt/extra"}],
    "network": {"mode": "filtered",
                "egress": [{"host": "api.example.com", "ports": [443, "8000-8080"], "protocol": "tcp"},
                           {"cidr": "10.0.0.0/8", "ports": [53], "protocol": "udp"},
                           {"host": "docs.example.org", "ports": [443], "private": true}],
                "dns": true},
    "syscalls": {"profile": "default", "deny": ["memfd_create"], "allow": ["ptrace"],
                 "action": "errno"},
    "budgets": {"wall_clock": "5m", "cpu_time": "2m", "tool_calls": 10, "syscalls": 100000,
                "processes": 16, "memory": "1GiB", "egress_bytes": 1048576, "cost_usd": 1.5},
    "rules": [{"id": "r1",
               "after": {"read": ["/usr/local/work/data"], "exec": ["helper"],
                         "connect": [1, "api.example.com"]},
               "deny": ["network", "write", "exec", "tool:sh", "host:api.example.com"]}],
    "audit": {"files": true, "syscalls": true},
    "baseline": {"profile": "/var/lib/enclosure/full.profile", "tolerance": 2.5, "action": "kill"},
    "on_violation": "kill",
    "enforcement": {"allow_degraded": ["cgroup"]}
  })");
}

// Every JSON pointer below the root of `doc`, parents before children.
void pointers(const json& doc, const std::string& at, std::vector<std::string>& out) {
  if (doc.is_object()) {
    for (const auto& [key, value] : doc.items()) {
      out.push_back(at + "/" + key);
      pointers(value, at + "/" + key, out);
    }
  } else if (doc.is_array()) {
    for (size_t i = 0; i < doc.size(); ++i) {
      out.push_back(at + "/" + std::to_string(i));
      pointers(doc[i], at + "/" + std::to_string(i), out);
    }
  }
}

std::vector<std::string> pointers(const json& doc) {
  std::vector<std::string> out;
  pointers(doc, "", out);
  return out;
}

json without(json doc, const std::string& pointer) {
  json::json_pointer p(pointer);
  json& parent = doc.at(p.parent_pointer());
  if (parent.is_array()) {
    parent.erase(std::stoul(p.back()));
  } else {
    parent.erase(p.back());
  }
  return doc;
}

json with(json doc, const std::string& pointer, const json& value) {
  doc[json::json_pointer(pointer)] = value;
  return doc;
}

// ---- tests ----------------------------------------------------------------------------------

TEST(ManifestSchema, DeclaresDraft2020AndUsesOnlyTheValidatedSubset) {
  const json& schema = manifest_schema();
  EXPECT_EQ(schema.value("$schema", ""), "https://json-schema.org/draft/2020-12/schema");
  std::set<std::string> unknown;
  size_t nodes = 0;
  each_subschema(schema, [&](const json& node) {
    ++nodes;
    for (const auto& [keyword, value] : node.items()) {
      (void)value;
      if (!validation_keywords().count(keyword) && !annotation_keywords().count(keyword)) {
        unknown.insert(keyword);
      }
    }
  });
  EXPECT_GT(nodes, 50u);
  EXPECT_TRUE(unknown.empty()) << "keywords the test validator does not implement: "
                               << json(unknown).dump();
}

TEST(ManifestSchema, EveryPatternCompilesAsEcmaScript) {
  size_t patterns = 0;
  each_subschema(manifest_schema(), [&](const json& node) {
    if (!node.contains("pattern")) return;
    ++patterns;
    const std::string p = node["pattern"];
    EXPECT_NO_THROW(std::regex(p, std::regex::ECMAScript)) << p;
  });
  EXPECT_GE(patterns, 15u);
}

TEST(ManifestSchema, KeysAreExactlyThoseTheParserAccepts) {
  SchemaKeys schema;
  collect_keys(manifest_schema(), manifest_schema(), "", schema);
  std::map<std::string, std::set<std::string>> parser;
  for (const auto& [pointer, keys] : policy::accepted_keys()) {
    parser[pointer] = std::set<std::string>(keys.begin(), keys.end());
  }
  for (const auto& [pointer, keys] : parser) {
    auto it = schema.keys.find(pointer);
    if (it == schema.keys.end()) {
      ADD_FAILURE() << "the parser accepts an object at \"" << pointer
                    << "\" that the schema does not describe";
      continue;
    }
    for (const std::string& k : keys) {
      EXPECT_TRUE(it->second.count(k)) << "\"" << pointer << "\": the parser accepts \"" << k
                                       << "\", the schema does not list it";
    }
    for (const std::string& k : it->second) {
      EXPECT_TRUE(keys.count(k)) << "\"" << pointer << "\": the schema lists \"" << k
                                 << "\", the parser rejects it";
    }
  }
  for (const auto& [pointer, keys] : schema.keys) {
    EXPECT_TRUE(parser.count(pointer))
        << "the schema describes an object at \"" << pointer << "\" that the parser does not read";
  }
}

TEST(ManifestSchema, ClosedObjectsForbidAdditionalPropertiesAndFreeOnesTakeStrings) {
  SchemaKeys schema;
  collect_keys(manifest_schema(), manifest_schema(), "", schema);
  for (const auto& [pointer, keys] : policy::accepted_keys()) {
    auto it = schema.objects.find(pointer);
    ASSERT_NE(it, schema.objects.end()) << "no object schema for \"" << pointer << "\"";
    bool free_form = keys.size() == 1 && keys[0] == "*";
    for (const json* node : it->second) {
      ASSERT_TRUE(node->contains("additionalProperties"))
          << "\"" << pointer << "\" does not say whether unknown keys are allowed";
      const json& extra = (*node)["additionalProperties"];
      if (free_form) {
        EXPECT_TRUE(extra.is_object()) << "\"" << pointer << "\" has free keys: "
                                       << "additionalProperties must be a schema";
      } else {
        EXPECT_EQ(extra, json(false)) << "\"" << pointer << "\" rejects unknown keys in the parser";
      }
    }
  }
}

TEST(ManifestSchema, ValidatorRejectsWhatItShould) {
  SchemaValidator v(manifest_schema());
  json ok = full_manifest();
  ASSERT_TRUE(v.valid(ok)) << join(v.validate(ok));
  EXPECT_FALSE(v.valid(with(ok, "/budgets/memory", "2 GiB")));
  EXPECT_FALSE(v.valid(with(ok, "/budgets/wall_clock", 300)));
  EXPECT_FALSE(v.valid(with(ok, "/network/egress/0/ports/0", 0)));
  EXPECT_FALSE(v.valid(with(ok, "/network/mode", "open")));
  EXPECT_FALSE(v.valid(with(ok, "/metadata/owner", "x")));
  EXPECT_FALSE(v.valid(with(ok, "/network/egress/0/cidr", "10.0.0.0/8")));  // host and cidr
  EXPECT_FALSE(v.valid(with(ok, "/filesystem/read/1", "/usr")));            // listed twice
  EXPECT_FALSE(v.valid(with(ok, "/tools", json::array())));
  EXPECT_FALSE(v.valid(without(ok, "/metadata/name")));
  EXPECT_FALSE(v.valid(with(ok, "/rules/0/after", json::object())));
  EXPECT_FALSE(v.valid(with(ok, "/rules/0/after", json{{"read", json::array()}})));
  EXPECT_TRUE(v.valid(with(ok, "/rules/0/after", json{{"read", json::array()}, {"exec", {"sh"}}})));
  EXPECT_FALSE(v.valid(with(json::object(), "/rules", json::array())));
}

TEST(ManifestSchema, ExampleManifestsAreValid) {
  SchemaValidator v(manifest_schema());
  std::filesystem::path dir = std::filesystem::path(ENCLOSURE_SOURCE_DIR) / "examples";
  std::set<std::string> seen;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
    json doc = json::parse(read_file(entry.path()), nullptr, false);
    if (!doc.is_object() || doc.value("apiVersion", "").rfind("enclosure/", 0) != 0) continue;
    SCOPED_TRACE(entry.path().string());
    seen.insert(entry.path().filename().string());
    EXPECT_TRUE(v.valid(doc)) << join(v.validate(doc));
    EXPECT_TRUE(parser_accepts(doc)) << parser_errors(doc);
  }
  for (const char* name : {"coding-agent.json", "data-agent.json", "browsing-agent.json"}) {
    EXPECT_TRUE(seen.count(name)) << "examples/" << name << " is missing";
  }
}

// Deleting any member or item: the schema and the parser agree, except where only a
// cross-section check of the parser can tell (listed, with the reason).
TEST(ManifestSchema, AgreesWithParserWhenAnyKeyOrItemIsRemoved) {
  SchemaValidator v(manifest_schema());
  const json full = full_manifest();
  ASSERT_TRUE(parser_accepts(full)) << parser_errors(full);
  ASSERT_TRUE(v.valid(full)) << join(v.validate(full));
  const std::map<std::string, std::string> kCrossSection{
      {"/filesystem", "cwd and the rule's read trigger lie outside the view"},
      {"/tools/0", "the rule denies tool:sh"},
      {"/tools/1", "the rule's exec trigger names helper"},
      {"/network", "mode none: the rule's connect triggers and deny network have no target"},
      {"/network/mode", "egress rules need mode filtered"},
      {"/network/egress", "the rule's connect triggers name egress rules"},
      {"/network/egress/0", "the rule's connect trigger names api.example.com"},
      {"/network/dns", "a host rule needs dns"},
  };
  size_t agreed = 0;
  for (const std::string& p : pointers(full)) {
    json doc = without(full, p);
    bool parser = parser_accepts(doc), schema = v.valid(doc);
    if (auto it = kCrossSection.find(p); it != kCrossSection.end()) {
      EXPECT_TRUE(schema) << p << ": " << join(v.validate(doc));
      EXPECT_FALSE(parser) << p << ": expected the parser to refuse (" << it->second << ")";
      continue;
    }
    EXPECT_EQ(parser, schema) << "without " << p << ": parser " << (parser ? "accepts" : "rejects")
                              << ", schema " << (schema ? "accepts" : "rejects") << "\n"
                              << parser_errors(doc) << join(v.validate(doc));
    ++agreed;
  }
  EXPECT_GT(agreed, 60u);
}

// Replacing any value by one of the wrong shape, or adding an unknown key to any object.
TEST(ManifestSchema, AgreesWithParserOnWrongTypesAndUnknownKeys) {
  SchemaValidator v(manifest_schema());
  const json full = full_manifest();
  for (const std::string& p : pointers(full)) {
    json doc = with(full, p, json{{"unexpected", json::array()}});
    EXPECT_FALSE(parser_accepts(doc)) << p;
    EXPECT_FALSE(v.valid(doc)) << p;
  }
  // Scalars of another type: strings become numbers, numbers strings, booleans strings.
  const std::set<std::string> kCrossSection{
      "/rules/0/after/connect/0",  // "42" names no egress host
      "/rules/0/after/connect/1",  // index 42 names no egress rule
  };
  for (const std::string& p : pointers(full)) {
    const json& value = full[json::json_pointer(p)];
    if (value.is_structured()) continue;
    json other = value.is_string() ? json(42) : value.is_number() ? json("42") : json("true");
    json doc = with(full, p, other);
    bool parser = parser_accepts(doc), schema = v.valid(doc);
    if (kCrossSection.count(p)) {
      EXPECT_TRUE(schema && !parser) << p;
      continue;
    }
    EXPECT_EQ(parser, schema) << p << " = " << other.dump() << ": parser "
                              << (parser ? "accepts" : "rejects") << ", schema "
                              << (schema ? "accepts" : "rejects") << "\n"
                              << parser_errors(doc) << join(v.validate(doc));
  }
  // An unknown key in every object: accepted only where keys are free (labels, env.set).
  std::vector<std::string> objects{""};
  for (const std::string& p : pointers(full)) {
    if (full[json::json_pointer(p)].is_object()) objects.push_back(p);
  }
  for (const std::string& p : objects) {
    json doc = with(full, p + "/zz_unknown", "x");
    bool parser = parser_accepts(doc), schema = v.valid(doc);
    EXPECT_EQ(parser, schema) << "unknown key under \"" << p << "\"\n"
                              << parser_errors(doc) << join(v.validate(doc));
    bool free_form = p == "/metadata/labels" || p == "/process/env/set";
    EXPECT_EQ(parser, free_form) << p;
  }
}

// Values whose lexical form the schema states: durations, sizes, ports, deny items, names,
// paths, hosts, enums and placeholders. Each row: pointer, value, whether it is valid.
struct ValueFormRow {
  std::string pointer;
  json value;
  bool valid;
};

// Both the parser and the schema take each row's value at its pointer in the full manifest as
// the row says.
void expect_value_forms_agree(const std::vector<ValueFormRow>& rows) {
  SchemaValidator v(manifest_schema());
  const json full = full_manifest();
  for (const ValueFormRow& row : rows) {
    json doc = with(full, row.pointer, row.value);
    bool parser = parser_accepts(doc), schema = v.valid(doc);
    if (row.pointer == "/network/mode") {
      // The schema cannot see allow_degraded; with it, both accept "host" (and no egress).
      EXPECT_TRUE(schema);
      EXPECT_FALSE(parser);
      continue;
    }
    EXPECT_EQ(parser, row.valid) << row.pointer << " = " << row.value.dump() << "\n"
                                 << parser_errors(doc);
    EXPECT_EQ(schema, row.valid) << row.pointer << " = " << row.value.dump() << "\n"
                                 << join(v.validate(doc));
  }
}

// Value forms: durations, sizes and counts under /budgets.
TEST(ManifestSchema, AgreesWithParserOnBudgetsValueForms) {
  expect_value_forms_agree({
      {"/budgets/wall_clock", "300ms", true},
      {"/budgets/wall_clock", "90s", true},
      {"/budgets/wall_clock", "2h", true},
      {"/budgets/wall_clock", "1d", true},
      {"/budgets/wall_clock", "7us", true},
      {"/budgets/wall_clock", "5ns", true},
      {"/budgets/wall_clock", "05m", true},
      {"/budgets/wall_clock", "0s", false},
      {"/budgets/wall_clock", "5", false},
      {"/budgets/wall_clock", "5 m", false},
      {"/budgets/wall_clock", "5min", false},
      {"/budgets/wall_clock", "1.5h", false},
      {"/budgets/wall_clock", "-5m", false},
      {"/budgets/wall_clock", "5M", false},
      {"/budgets/cpu_time", "", false},
      {"/budgets/memory", "512KiB", true},
      {"/budgets/memory", "2GiB", true},
      {"/budgets/memory", "1TiB", true},
      {"/budgets/memory", "10MB", true},
      {"/budgets/memory", "3kB", true},
      {"/budgets/memory", "100B", true},
      {"/budgets/memory", 4096, true},
      {"/budgets/memory", 0, false},
      {"/budgets/memory", -1, false},
      {"/budgets/memory", 1.5, false},
      {"/budgets/memory", "0B", false},
      {"/budgets/memory", "0GiB", false},
      {"/budgets/memory", "2gb", false},
      {"/budgets/memory", "2G", false},
      {"/budgets/memory", "2KB", false},
      {"/budgets/memory", "2 GiB", false},
      {"/budgets/egress_bytes", "1.5MiB", false},
      {"/budgets/tool_calls", 0, true},
      {"/budgets/tool_calls", -1, false},
      {"/budgets/processes", 0, false},
      {"/budgets/syscalls", 0, false},
      {"/budgets/syscalls", 4611686018427387904ULL, true},
      {"/budgets/syscalls", 4611686018427387905ULL, false},
      {"/budgets/cost_usd", 0, true},
      {"/budgets/cost_usd", 1000000, true},
      {"/budgets/cost_usd", 1000000.5, false},
      {"/budgets/cost_usd", -0.01, false},
      {"/budgets/cost_usd", "1", false},
  });
}

// Value forms: ports, protocols, hosts, CIDR blocks and the mode under /network.
TEST(ManifestSchema, AgreesWithParserOnNetworkValueForms) {
  expect_value_forms_agree({
      {"/network/egress/0/ports/0", 1, true},
      {"/network/egress/0/ports/0", 65535, true},
      {"/network/egress/0/ports/0", 0, false},
      {"/network/egress/0/ports/0", 65536, false},
      {"/network/egress/0/ports/0", -443, false},
      {"/network/egress/0/ports/0", 443.5, false},
      {"/network/egress/0/ports/0", "443", false},
      {"/network/egress/0/ports/0", "1-65535", true},
      {"/network/egress/0/ports/0", "00080-00090", true},
      {"/network/egress/0/ports/0", "000080-90", false},
      {"/network/egress/0/ports/0", "0-5", false},
      {"/network/egress/0/ports/0", "1-65536", false},
      {"/network/egress/0/ports/0", "65530-65535", true},
      {"/network/egress/0/ports/0", "80 - 90", false},
      {"/network/egress/0/ports/0", "-80", false},
      {"/network/egress/0/ports/0", "80-", false},
      {"/network/egress/0/ports", json::array(), false},
      {"/network/egress/0/protocol", "udp", true},
      {"/network/egress/0/protocol", "icmp", false},
      {"/network/egress/0/protocol", "TCP", false},
      {"/network/egress/2/host", "*.example.com", true},
      {"/network/egress/2/host", "a_b.example.com", true},
      {"/network/egress/2/host", "localhost", true},
      {"/network/egress/2/host", "*.com", false},
      {"/network/egress/2/host", "API.example.com", false},
      {"/network/egress/2/host", "api.example.com.", false},
      {"/network/egress/2/host", "-api.example.com", false},
      {"/network/egress/2/host", "api-.example.com", false},
      {"/network/egress/2/host", "a..b", false},
      {"/network/egress/2/host", "10.1.2.3", false},
      {"/network/egress/2/host", "x.*.example.com", false},
      {"/network/egress/2/host", "", false},
      {"/network/egress/2/host", std::string(64, 'a') + ".com", false},
      {"/network/egress/2/host", std::string(63, 'a') + ".com", true},
      {"/network/egress/1/cidr", "192.168.0.0/16", true},
      {"/network/egress/1/cidr", "192.168.1.1", true},
      {"/network/egress/1/cidr", "2001:db8::/32", true},
      {"/network/egress/1/cidr", "::ffff:10.0.0.0/104", true},
      {"/network/egress/1/cidr", "10.0.0.0/", false},
      {"/network/egress/1/cidr", "example.com", false},
      {"/network/egress/1/cidr", "10.0.0.0/8/8", false},
      {"/network/egress/2/private", false, true},
      {"/network/egress/2/private", "yes", false},
      {"/network/egress/2/private", 1, false},
      {"/network/egress/0/private", true, true},
      {"/network/egress/1/private", true, false},  // a cidr rule names its addresses itself
      {"/network/egress/1/private", false, false},
      {"/network/mode", "host", false},  // needs allow_degraded network; see below
  });
}

// Value forms: rule ids and deny items, metadata names and revisions.
TEST(ManifestSchema, AgreesWithParserOnRulesAndMetadataValueForms) {
  expect_value_forms_agree({
      {"/rules/0/deny/0", "tool:helper", true},
      {"/rules/0/deny/0", "tool:", false},
      {"/rules/0/deny/0", "host:", false},
      {"/rules/0/deny/0", "read", false},
      {"/rules/0/deny/0", "Network", false},
      {"/rules/0/deny/0", " network", false},
      {"/rules/0/deny", json::array(), false},
      {"/rules/0/id", "no-exfil.after_pii-2", true},
      {"/rules/0/id", "", false},
      {"/rules/0/id", "has space", false},
      {"/rules/0/id", std::string(65, 'r'), false},
      {"/rules/0/after/connect/0", -1, false},
      {"/rules/0/after/connect/1", "", false},
      {"/metadata/name", "a", true},
      {"/metadata/name", "support-triage.v2_b", true},
      {"/metadata/name", "-lead", false},
      {"/metadata/name", "has space", false},
      {"/metadata/name", std::string(128, 'n'), true},
      {"/metadata/name", std::string(129, 'n'), false},
      {"/metadata/revision", -1, false},
      {"/metadata/revision", 0, true},
  });
}

// Value forms: tool names, paths and limits, filesystem paths.
TEST(ManifestSchema, AgreesWithParserOnToolsAndFilesystemValueForms) {
  expect_value_forms_agree({
      {"/tools/2/name", "g++", true},
      {"/tools/2/name", "a/b", false},
      {"/tools/2/name", "", false},
      {"/tools/2/name", std::string(65, 't'), false},
      {"/tools/2/path", "/", false},
      {"/tools/2/path", "opt/helper", false},
      {"/tools/2/path", "/opt/helper/", false},
      {"/tools/2/path", "/opt//helper", false},
      {"/tools/2/path", "/opt/./helper", false},
      {"/tools/2/path", "/opt/../helper", false},
      {"/tools/2/path", "/opt/..helper", true},
      {"/tools/2/path", "/opt/.helper", true},
      {"/tools/2/path", "/opt/hel\tper", false},
      {"/tools/2/max_calls", 1099511627776ULL, true},
      {"/tools/2/max_calls", 1099511627777ULL, false},
      {"/tools/0/cost_usd", -1, false},
      {"/filesystem/read/0", "/", true},
      {"/filesystem/read/0", "/proc/self", false},
      {"/filesystem/read/0", "/dev", false},
      {"/filesystem/read/0", "/device", true},
      {"/filesystem/tmpfs/0", "/", false},
      {"/filesystem/tmpfs/0", "/dev/shm", false},
      {"/filesystem/write/0", "/usr/local/work/", false},
      {"/filesystem/hide/0", "/usr/local/work/secret/..", false},
  });
}

// Value forms: cwd, environment names, ids and context patterns.
TEST(ManifestSchema, AgreesWithParserOnProcessAndContextValueForms) {
  expect_value_forms_agree({
      {"/process/cwd", "/", true},
      {"/process/cwd", "relative", false},
      {"/process/env/pass/0", "LANG", true},
      {"/process/env/pass/0", "_X1", true},
      {"/process/env/pass/0", "1X", false},
      {"/process/env/pass/0", "A-B", false},
      {"/process/env/pass/0", "ENCLOSURE_METER_FD", false},
      {"/process/env/set/ENCLOSURE_X", "1", false},
      {"/process/env/set/NUL", std::string("a\0b", 3), false},
      {"/process/user/uid", 4294967294ULL, true},
      {"/process/user/uid", 4294967295ULL, false},
      {"/process/user/gid", -1, false},
      {"/context/task/pattern", "^(x|y)$", true},
      {"/context/task/pattern", "[a-z]+$", false},
      {"/context/task/pattern", "^[a-z]+", false},
      {"/context/task/pattern", "^[a-z]+\\$", false},
      {"/context/1task", json{{"pattern", "^x$"}}, false},
      {"/context/task_" + std::string(59, 'x'), json{{"pattern", "^x$"}}, true},
      {"/context/task_" + std::string(60, 'x'), json{{"pattern", "^x$"}}, false},
  });
}

// Value forms: syscalls, baseline, enforcement and top-level enums.
TEST(ManifestSchema, AgreesWithParserOnOtherSectionsValueForms) {
  expect_value_forms_agree({
      {"/syscalls/deny/0", "not-a-syscall", false},
      {"/syscalls/deny/0", "Ptrace", false},
      {"/syscalls/profile", "docker", false},
      {"/syscalls/action", "trap", false},
      {"/baseline/tolerance", 1, true},
      {"/baseline/tolerance", 0.5, false},
      {"/baseline/tolerance", 1001, false},
      {"/baseline/profile", "${task}", false},
      {"/baseline/action", "deny", false},
      {"/on_violation", "warn", false},
      {"/enforcement/allow_degraded/0", "network", true},
      {"/enforcement/allow_degraded/0", "lsm", false},
      {"/apiVersion", "enclosure/v2", false},
      {"/audit/files", "yes", false},
  });
}

// Placeholders: accepted by the schema in the sections the parser expands, and only there.
TEST(ManifestSchema, PlaceholdersAreAcceptedWhereTheParserExpandsThem) {
  SchemaValidator v(manifest_schema());
  json doc = json::parse(R"({
    "apiVersion": "enclosure/v1",
    "metadata": {"name": "templated"},
    "context": {"dir": {"pattern": "^/srv/[a-z]+$", "default": "/srv/x"},
                "id": {"pattern": "^[0-9]+$"},
                "mode": {"pattern": "^(none|filtered)$", "default": "filtered"},
                "port": {"pattern": "^[0-9]{1,5}$", "default": "5432"},
                "tool": {"pattern": "^[a-z]+$", "default": "sh"}},
    "process": {"cwd": "${dir}", "env": {"set": {"TASK": "${id}"}}},
    "filesystem": {"read": ["/usr", "/data/${id}"], "write": ["${dir}"]},
    "tools": [{"name": "sh", "path": "/usr/bin/sh"}, {"name": "t", "path": "${dir}/bin/t"}],
    "network": {"mode": "${mode}",
                "egress": [{"cidr": "10.0.0.0/8", "ports": ["${port}-${port}"],
                            "protocol": "tcp"}]},
    "rules": [{"id": "r-${tool}", "after": {"read": ["/data/${id}"], "exec": ["${tool}"]},
               "deny": ["tool:${tool}"]}]
  })");
  EXPECT_TRUE(v.valid(doc)) << join(v.validate(doc));
  EXPECT_TRUE(parser_accepts(doc)) << parser_errors(doc);
  auto accepted = policy::load_manifest(doc.dump(), {{"id", "42"}});
  ASSERT_TRUE(accepted.manifest);
  EXPECT_EQ(accepted.manifest->network.mode, policy::NetworkMode::filtered);
  EXPECT_EQ(accepted.manifest->rules[0].id, "r-sh");
  EXPECT_EQ(accepted.manifest->filesystem.read[1], "/data/42");
  // Outside the expanded sections a placeholder is only text, which the parser refuses where a
  // form is required; the schema refuses it as well.
  for (const auto& [pointer, value] :
       std::vector<std::pair<std::string, json>>{{"/syscalls/profile", "${mode}"},
                                                 {"/tools/0/name", "${tool}"},
                                                 {"/budgets/wall_clock", "${id}s"},
                                                 {"/on_violation", "${mode}"},
                                                 {"/baseline", json{{"profile", "${dir}/p"}}}}) {
    json bad = with(doc, pointer, value);
    EXPECT_FALSE(v.valid(bad)) << pointer;
    EXPECT_FALSE(parser_accepts(bad)) << pointer;
  }
}

}  // namespace
