// Keeps policy/MANIFEST.md, the manifest reference, from falling behind the parser and the
// schema: every key the parser accepts and every key and enum value of the schema is named on
// the page (in backticks), every top-level key has a section of its own, the page's complete
// example is a valid manifest, and the page links to nothing outside the repository.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "policy/load.h"

namespace {

using nlohmann::json;

std::string read_source_file(const std::filesystem::path& relative) {
  std::ifstream in(std::filesystem::path(ENCLOSURE_SOURCE_DIR) / relative, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string& reference() {
  static const std::string kText = read_source_file("policy/MANIFEST.md");
  return kText;
}

// What the page writes in backticks: each identifier ("`env.pass`" names "env" and "pass",
// "`\"filtered\"`" names "filtered") and each whole span.
const std::set<std::string>& names_in_backticks() {
  static const std::set<std::string> kNames = [] {
    std::set<std::string> names;
    // Fenced code blocks (the example, the synopsis) do not count: a key must be described.
    std::string text = reference();
    for (size_t fence = text.find("```"); fence != std::string::npos; fence = text.find("```")) {
      size_t end = text.find("```", fence + 3);
      text.erase(fence, end == std::string::npos ? std::string::npos : end + 3 - fence);
    }
    const std::regex word("[A-Za-z0-9_@-]+");
    size_t open = text.find('`');
    while (open != std::string::npos) {
      size_t close = text.find('`', open + 1);
      if (close == std::string::npos) break;
      std::string span = text.substr(open + 1, close - open - 1);
      // The whole span as well, without quotes: "`\"enclosure/v1\"`" names "enclosure/v1".
      if (span.size() >= 2 && span.front() == '"' && span.back() == '"')
        names.insert(span.substr(1, span.size() - 2));
      names.insert(span);
      for (std::sregex_iterator it(span.begin(), span.end(), word), end; it != end; ++it)
        names.insert(it->str());
      open = text.find('`', close + 1);
    }
    return names;
  }();
  return kNames;
}

// Every property name and string enum value of the schema, with the JSON pointer it comes from.
void collect_schema_names(const json& node, const std::string& pointer,
                          std::map<std::string, std::string>& out) {
  if (node.is_object()) {
    if (node.contains("properties") && node["properties"].is_object()) {
      for (const auto& [key, unused] : node["properties"].items()) {
        (void)unused;
        out.emplace(key, pointer + "/properties/" + key);
      }
    }
    if (node.contains("enum") && node["enum"].is_array()) {
      for (const json& value : node["enum"]) {
        if (value.is_string()) out.emplace(value.get<std::string>(), pointer + "/enum");
      }
    }
    for (const auto& [key, child] : node.items()) {
      if (key != "$defs") collect_schema_names(child, pointer + "/" + key, out);
    }
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i)
      collect_schema_names(node[i], pointer + "/" + std::to_string(i), out);
  }
}

TEST(ManifestReference, NamesEveryKeyTheParserAccepts) {
  ASSERT_FALSE(reference().empty()) << "policy/MANIFEST.md is missing";
  for (const auto& [object, keys] : policy::accepted_keys()) {
    for (const std::string& key : keys) {
      if (key == "*") continue;
      EXPECT_TRUE(names_in_backticks().count(key))
          << "policy/MANIFEST.md never names `" << key << "` (a key of " << object
          << "/ that the parser accepts)";
    }
  }
}

TEST(ManifestReference, NamesEveryKeyAndEnumValueOfTheSchema) {
  json schema = json::parse(read_source_file("policy/manifest.schema.json"));
  std::map<std::string, std::string> names;
  collect_schema_names(schema, "", names);
  ASSERT_GT(names.size(), 50u);
  for (const auto& [name, pointer] : names) {
    EXPECT_TRUE(names_in_backticks().count(name))
        << "policy/MANIFEST.md never names `" << name << "` (schema " << pointer << ")";
  }
}

TEST(ManifestReference, HasASectionForEveryTopLevelKey) {
  for (const std::string& key : policy::accepted_keys().at("")) {
    EXPECT_NE(reference().find("\n### " + key + "\n"), std::string::npos)
        << "policy/MANIFEST.md has no section \"### " << key << "\"";
  }
}

TEST(ManifestReference, ItsCompleteExampleIsAValidManifest) {
  const std::string& text = reference();
  size_t heading = text.find("## A complete example");
  ASSERT_NE(heading, std::string::npos);
  size_t open = text.find("```json\n", heading);
  ASSERT_NE(open, std::string::npos);
  open += 8;
  size_t close = text.find("```", open);
  ASSERT_NE(close, std::string::npos);
  policy::LoadResult loaded =
      policy::load_manifest(text.substr(open, close - open), {{"tenant", "acme"}});
  std::string errors;
  for (const policy::Diagnostic& d : loaded.diagnostics.errors())
    errors += d.path + ": " + d.message + "\n";
  EXPECT_TRUE(loaded.manifest.has_value()) << errors;
}

TEST(ManifestReference, PointsNowhereOutsideTheRepository) {
  for (const char* file : {"policy/MANIFEST.md", "README.md"}) {
    std::string text = read_source_file(file);
    // Spelt in two parts, so that this file does not match the search for such links itself.
    const std::string outside = std::string("..") + "/shared";
    EXPECT_EQ(text.find(outside), std::string::npos) << file << " links outside the repository";
  }
}

}  // namespace
