// Task context: ${name} expansion, defaults and given values, and the rules that keep a value
// from widening a permission (no "/", "..", glob character, NUL or control character unless
// the pattern names it; valid UTF-8; at most 1024 bytes).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "policy/compile.h"
#include "policy/context.h"
#include "policy/load.h"

namespace {

using nlohmann::json;

std::string errors_of(const policy::LoadResult& r) {
  std::string out;
  for (const auto& e : r.diagnostics.errors())
    out += e.path + ": " + e.message + "\n";
  return out;
}

// A manifest whose one context variable "x" (pattern given, optional default) is used in a
// read path, the working directory's grant and a rule.
std::string manifest_with(const std::string& pattern, const json& default_value = nullptr,
                          const std::string& read_path = "/data/${x}") {
  json decl = {{"pattern", pattern}};
  if (!default_value.is_null()) decl["default"] = default_value;
  json doc = {
      {"apiVersion", "enclosure/v1"},
      {"metadata", {{"name", "ctx"}}},
      {"context", {{"x", decl}}},
      {"filesystem", {{"read", {"/usr", read_path}}}},
      {"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}}}},
      {"rules", {{{"id", "r"}, {"after", {{"read", {read_path}}}}, {"deny", {"exec"}}}}},
  };
  return doc.dump();
}

// Loads manifest_with(pattern) with x=value; returns the error at /context/x, or "" if none.
struct Outcome {
  bool accepted = false;
  std::string path;     // of the first error
  std::string message;  // of the first error
  std::string all;
};

Outcome load_with_value(const std::string& pattern, const std::string& value) {
  policy::LoadResult r = policy::load_manifest(manifest_with(pattern), {{"x", value}});
  Outcome o;
  o.accepted = r.manifest.has_value();
  o.all = errors_of(r);
  if (!r.diagnostics.errors().empty()) {
    o.path = r.diagnostics.errors()[0].path;
    o.message = r.diagnostics.errors()[0].message;
  }
  return o;
}

struct Rejection {
  const char* name;
  const char* pattern;
  std::string value;
  const char* fragment;
};

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.name;
}

class ContextValueRejected : public ::testing::TestWithParam<Rejection> {};

TEST_P(ContextValueRejected, AtContextPointer) {
  const Rejection& c = GetParam();
  Outcome o = load_with_value(c.pattern, c.value);
  EXPECT_FALSE(o.accepted);
  EXPECT_EQ(o.path, "/context/x") << o.all;
  EXPECT_NE(o.message.find("--context x: "), std::string::npos) << o.message;
  EXPECT_NE(o.message.find(c.fragment), std::string::npos) << o.message;
  // The value is refused as a value: the load reports that and nothing else.
  EXPECT_EQ(o.all.find('\n'), o.all.size() - 1) << o.all;
}

// "^.+$" matches almost anything, and names no character: the character rules do the work.
const Rejection kRejections[] = {
    {"ParentSegmentWithSlash", "^.+$", "../secret", "contains '/'"},
    {"ParentSegmentAlone", "^.+$", "..", "contains a \"..\" path segment"},
    {"ParentSegmentWhenSlashNamed", "^[a-z./]+$", "a/../b", "\"..\" path segment"},
    {"TrailingParentWhenSlashNamed", "^[a-z./]+$", "a/..", "\"..\" path segment"},
    {"SlashNotNamed", "^.+$", "a/b", "value contains '/', which the pattern ^.+$ does not name"},
    {"SlashNotNamedByClass", "^[^ ]+$", "a/b", "contains '/'"},
    {"Star", "^.+$", "a*", "contains '*'"},
    {"Question", "^.+$", "a?", "contains '?'"},
    {"OpenBracket", "^.+$", "[a", "contains '['"},
    {"CloseBracket", "^.+$", "a]", "contains ']'"},
    {"OpenBrace", "^.+$", "{a", "contains '{'"},
    {"CloseBrace", "^.+$", "a}", "contains '}'"},
    {"EmbeddedNul", "^.+$", std::string("a\0b", 3), "value contains a NUL byte"},
    {"Newline", "^.+$", "a\nb", "value contains a control character"},
    {"CarriageReturn", "^.+$", "a\rb", "control character"},
    {"Tab", "^.+$", "a\tb", "control character"},
    {"Escape", "^.+$", "a\x1b[31m", "control character"},
    {"Delete", "^.+$", "a\x7f", "control character"},
    {"C1NextLine", "^.+$", "a\xc2\x85", "control character"},
    {"InvalidUtf8Byte", "^.+$", "a\xff", "value is not valid UTF-8"},
    {"OverlongSlash", "^.+$", "a\xc0\xaf", "not valid UTF-8"},
    {"TruncatedSequence", "^.+$", "a\xe2\x82", "not valid UTF-8"},
    {"Surrogate", "^.+$", "a\xed\xa0\x80", "not valid UTF-8"},
    {"TooLong", "^[a-z]+$", std::string(1025, 'a'), "value is 1025 bytes long; at most 1024"},
    {"DoesNotMatch", "^[0-9]{1,12}$", "12a", "value does not match the pattern ^[0-9]{1,12}$"},
    {"EmptyDoesNotMatch", "^[0-9]{1,12}$", "", "does not match"},
    // The lookahead names "/" to exclude it at the start; ".*" then admits it anywhere else.
    {"SlashNamedOnlyInNegativeLookahead", "^(?!/).*$", "a/b", "contains '/'"},
    // Downstream, "${" marks a template placeholder and skips checks; a value may not forge one.
    {"PlaceholderLookalike", "^[a-z${}]+$", "${x}", "value contains \"${\""},
};

INSTANTIATE_TEST_SUITE_P(Injection, ContextValueRejected, ::testing::ValuesIn(kRejections),
                         [](const ::testing::TestParamInfo<Rejection>& info) {
                           return std::string(info.param.name);
                         });

TEST(Context, ValuesThePatternNamesAreAccepted) {
  EXPECT_TRUE(load_with_value("^[a-z?*]+$", "ab*").accepted);
  EXPECT_TRUE(load_with_value("^[a-z]+\\*$", "ab*").accepted);
  EXPECT_TRUE(load_with_value("^\\{[a-z]+\\}$", "{ab}").accepted);
  EXPECT_TRUE(load_with_value("^.+$", "caf\xc3\xa9").accepted);  // UTF-8 is fine
  EXPECT_TRUE(load_with_value("^[a-z.]+$", "a.b").accepted);     // "." is not ".."
  EXPECT_TRUE(load_with_value("^[a-z.]+$", "...").accepted);     // nor is "..."
  // 1024 bytes is the limit; path segments stay below 256 bytes.
  std::string longest;
  for (int i = 0; i < 10; ++i)
    longest += std::string(99, 'a') + "/";
  longest += std::string(24, 'a');
  ASSERT_EQ(longest.size(), policy::kMaxContextValueLength);
  Outcome o = load_with_value("^[a-z/]+$", longest);
  EXPECT_TRUE(o.accepted) << o.all;
  EXPECT_FALSE(load_with_value("^[a-z/]+$", longest + "a").accepted);
}

TEST(Context, SlashNamedByPatternIsAccepted) {
  const std::string pattern = "^/srv/tasks/[a-z0-9-]+$";
  policy::LoadResult r =
      policy::load_manifest(manifest_with(pattern, nullptr, "${x}"), {{"x", "/srv/tasks/t-17"}});
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  EXPECT_EQ(r.manifest->filesystem.read.at(1), "/srv/tasks/t-17");
  EXPECT_EQ(r.manifest->context_values.at("x"), "/srv/tasks/t-17");
  // The same pattern does not let a value climb out.
  Outcome o = load_with_value("^/srv/tasks/[a-z0-9.-]+$", "/srv/tasks/..");
  EXPECT_FALSE(o.accepted);
  EXPECT_EQ(o.path, "/context/x");
  EXPECT_NE(o.message.find("\"..\""), std::string::npos) << o.message;
}

TEST(Context, DefaultRejectedAtItsPointer) {
  struct Case {
    std::string value;
    const char* fragment;
  };
  const Case cases[] = {
      {std::string("a\0b", 3), "default rejected: value contains a NUL byte"},
      {"a/b", "default rejected: value contains '/'"},
      {"..", "default rejected: value contains a \"..\" path segment"},
      {"a\nb", "default rejected: value contains a control character"},
      {"*", "default rejected: value contains '*'"},
      {std::string(2000, 'a'), "default rejected: value is 2000 bytes long"},
  };
  for (const Case& c : cases) {
    // The default travels through JSON text: NUL is written "\u0000".
    std::string text = manifest_with("^.+$", c.value);
    if (c.value.find('\0') != std::string::npos) {
      ASSERT_NE(text.find("\\u0000"), std::string::npos);
    }
    policy::LoadResult r = policy::load_manifest(text);
    EXPECT_FALSE(r.manifest.has_value());
    ASSERT_EQ(r.diagnostics.errors().size(), 1u) << errors_of(r);
    EXPECT_EQ(r.diagnostics.errors()[0].path, "/context/x/default");
    EXPECT_NE(r.diagnostics.errors()[0].message.find(c.fragment), std::string::npos)
        << r.diagnostics.errors()[0].message;
  }
}

TEST(Context, DefaultIsApplied) {
  policy::LoadResult r = policy::load_manifest(manifest_with("^[0-9]+$", "42"));
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  const policy::Manifest& m = *r.manifest;
  EXPECT_EQ(m.context_values.at("x"), "42");
  EXPECT_EQ(m.filesystem.read.at(1), "/data/42");
  EXPECT_EQ(m.rules.at(0).after.read.at(0), "/data/42");
  EXPECT_TRUE(m.unresolved.empty());
  EXPECT_FALSE(m.is_template());
  ASSERT_EQ(m.context.size(), 1u);
  EXPECT_EQ(m.context[0].default_value, std::optional<std::string>("42"));
}

TEST(Context, GivenValueOverridesDefault) {
  policy::LoadResult r = policy::load_manifest(manifest_with("^[0-9]+$", "42"), {{"x", "7"}});
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  EXPECT_EQ(r.manifest->context_values.at("x"), "7");
  EXPECT_EQ(r.manifest->filesystem.read.at(1), "/data/7");
}

TEST(Context, BadGivenValueDoesNotFallBackToDefault) {
  policy::LoadResult r = policy::load_manifest(manifest_with("^[0-9]+$", "42"), {{"x", "../1"}});
  EXPECT_FALSE(r.manifest.has_value());
  ASSERT_FALSE(r.diagnostics.errors().empty());
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/context/x");
}

TEST(Context, MissingValueWithoutDefaultIsAnError) {
  policy::LoadResult r = policy::load_manifest(manifest_with("^[0-9]+$"));
  EXPECT_FALSE(r.manifest.has_value());
  ASSERT_EQ(r.diagnostics.errors().size(), 1u) << errors_of(r);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/context/x");
  EXPECT_EQ(r.diagnostics.errors()[0].message, "no value given (--context x=VALUE) and no default");
}

TEST(Context, MissingValueAcceptedAsTemplateButNotCompiled) {
  policy::LoadOptions options;
  options.allow_unresolved = true;
  policy::LoadResult r = policy::load_manifest(manifest_with("^[0-9]+$"), {}, options);
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  const policy::Manifest& m = *r.manifest;
  EXPECT_EQ(m.unresolved, std::vector<std::string>{"x"});
  EXPECT_TRUE(m.is_template());
  EXPECT_EQ(m.filesystem.read.at(1), "/data/${x}");
  EXPECT_EQ(m.context_values.count("x"), 0u);
  policy::CompileResult c = policy::compile(m);
  EXPECT_FALSE(c.plan.has_value());
  EXPECT_NE(c.error.find("x"), std::string::npos) << c.error;
}

TEST(Context, TemplateAcceptsPlaceholderAtPathStart) {
  policy::LoadOptions options;
  options.allow_unresolved = true;
  policy::LoadResult r =
      policy::load_manifest(manifest_with("^/srv/[a-z]+$", nullptr, "${x}"), {}, options);
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  EXPECT_EQ(r.manifest->filesystem.read.at(1), "${x}");
  // Without the option the same manifest is an error at the variable.
  policy::LoadResult strict =
      policy::load_manifest(manifest_with("^/srv/[a-z]+$", nullptr, "${x}"));
  EXPECT_FALSE(strict.manifest.has_value());
  ASSERT_FALSE(strict.diagnostics.errors().empty());
  EXPECT_EQ(strict.diagnostics.errors()[0].path, "/context/x");
}

TEST(Context, TemplateWithAValueIsNotATemplate) {
  policy::LoadOptions options;
  options.allow_unresolved = true;
  policy::LoadResult r = policy::load_manifest(manifest_with("^[0-9]+$"), {{"x", "5"}}, options);
  ASSERT_TRUE(r.manifest.has_value()) << errors_of(r);
  EXPECT_FALSE(r.manifest->is_template());
  EXPECT_TRUE(policy::compile(*r.manifest).plan.has_value()) << policy::compile(*r.manifest).error;
}

TEST(Context, UndeclaredContextNameIsAnError) {
  policy::LoadResult r =
      policy::load_manifest(manifest_with("^[0-9]+$", "1"), {{"x", "2"}, {"y", "3"}});
  EXPECT_FALSE(r.manifest.has_value());
  ASSERT_EQ(r.diagnostics.errors().size(), 1u) << errors_of(r);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/context");
  EXPECT_NE(r.diagnostics.errors()[0].message.find("--context y: the manifest declares no such "
                                                   "variable"),
            std::string::npos);
}

TEST(Context, ContextForManifestWithoutContextSection) {
  const char* text = R"({"apiVersion": "enclosure/v1", "metadata": {"name": "m"},
                         "tools": [{"name": "t", "path": "/bin/t"}]})";
  EXPECT_TRUE(policy::load_manifest(text).manifest.has_value());
  policy::LoadResult r = policy::load_manifest(text, {{"customer_id", "1"}});
  EXPECT_FALSE(r.manifest.has_value());
  ASSERT_EQ(r.diagnostics.errors().size(), 1u);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/context");
}

TEST(Context, ValueForAVariableWithABadPatternIsNotUndeclared) {
  policy::LoadResult r = policy::load_manifest(manifest_with("[0-9]+"), {{"x", "1"}});
  ASSERT_EQ(r.diagnostics.errors().size(), 1u) << errors_of(r);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/context/x/pattern");
}

TEST(Context, DollarAndBracesNamedButNotTogether) {
  EXPECT_TRUE(load_with_value("^[a-z${}]+$", "a$b").accepted);
  EXPECT_TRUE(load_with_value("^[a-z${}]+$", "{a}").accepted);
  EXPECT_TRUE(load_with_value("^[a-z${}]+$", "a$").accepted);
  EXPECT_FALSE(load_with_value("^[a-z${}]+$", "a${").accepted);
}

// ---- helpers ---------------------------------------------------------------------------------

std::set<char> chars(const std::string& s) {
  return std::set<char>(s.begin(), s.end());
}

TEST(ExplicitCharacters, LiteralsAndEscapes) {
  EXPECT_EQ(policy::explicit_characters("^a\\/b$"), chars("a/b"));
  EXPECT_EQ(policy::explicit_characters("^\\*\\{\\?$"), chars("*{?"));
  EXPECT_EQ(policy::explicit_characters("^(foo|bar)$"), chars("fobar"));
  EXPECT_EQ(policy::explicit_characters("^/srv/x$"), chars("/srvx"));
}

TEST(ExplicitCharacters, ClassesNameNothing) {
  EXPECT_TRUE(policy::explicit_characters("^.+$").empty());
  EXPECT_TRUE(policy::explicit_characters("^\\d+\\w*\\S?$").empty());
  EXPECT_TRUE(policy::explicit_characters("^[^/]+$").empty());
  EXPECT_TRUE(policy::explicit_characters("^[^a-z*]$").empty());
}

TEST(ExplicitCharacters, BracketExpressions) {
  std::set<char> s = policy::explicit_characters("^/srv/tasks/[a-z0-9-]+$");
  for (char c : std::string("/srvtaskbz09-"))
    EXPECT_TRUE(s.count(c)) << c;
  for (char c = 'a'; c <= 'z'; ++c)
    EXPECT_TRUE(s.count(c)) << c;
  for (char c : std::string("*?[]{}."))
    EXPECT_FALSE(s.count(c)) << c;

  EXPECT_EQ(policy::explicit_characters("^[a-c*?]$"), chars("abc*?"));
  EXPECT_EQ(policy::explicit_characters("^[\\[\\]\\d]$"), chars("[]"));
  // A range names its end points and its alphanumerics, not the punctuation in between.
  EXPECT_EQ(policy::explicit_characters("^[+-/]$"), chars("+/"));
  EXPECT_EQ(policy::explicit_characters("^[!-~]$").count('/'), 0u);
  EXPECT_EQ(policy::explicit_characters("^[!-~]$").count('*'), 0u);
  EXPECT_EQ(policy::explicit_characters("^[!-~]$").count('q'), 1u);
  // A trailing "-" is a literal member.
  EXPECT_EQ(policy::explicit_characters("^[a-]$"), chars("a-"));
}

TEST(ExplicitCharacters, NegativeLookaheadNamesNothing) {
  EXPECT_TRUE(policy::explicit_characters("^(?!/).*$").empty());
  EXPECT_EQ(policy::explicit_characters("^(?!.*\\.\\.)[ab.]+$"), chars("ab."));
  EXPECT_EQ(policy::explicit_characters("^(?![*)(])x$"), chars("x"));
  EXPECT_EQ(policy::explicit_characters("^(?!(a|b)/)c/d$"), chars("c/d"));
  // A positive lookahead or a plain group still names its characters.
  EXPECT_EQ(policy::explicit_characters("^(?=/)/a$").count('/'), 1u);
  EXPECT_EQ(policy::explicit_characters("^(?:/x)$"), chars("/x:"));
}

TEST(ExplicitCharacters, QuantifierBracesAreNotNamed) {
  std::set<char> s = policy::explicit_characters("^[0-9]{1,12}$");
  EXPECT_EQ(s.count('{'), 0u);
  EXPECT_EQ(s.count('}'), 0u);
  for (char c = '0'; c <= '9'; ++c)
    EXPECT_TRUE(s.count(c)) << c;
}

TEST(ContextPattern, MustBeAnchoredAndValid) {
  std::string why;
  EXPECT_TRUE(policy::compile_context_pattern("^[0-9]{1,12}$", why).has_value()) << why;
  EXPECT_TRUE(policy::compile_context_pattern("^$", why).has_value()) << why;
  for (const char* bad : {"[0-9]+", "^[0-9]+", "[0-9]+$", "^abc\\$", "", "^", "$"}) {
    why.clear();
    EXPECT_FALSE(policy::compile_context_pattern(bad, why).has_value()) << bad;
    EXPECT_NE(why.find("anchored"), std::string::npos) << bad << ": " << why;
  }
  for (const char* bad : {"^[0-9$", "^(a$", "^a{2,1}$", "^*$"}) {
    why.clear();
    EXPECT_FALSE(policy::compile_context_pattern(bad, why).has_value()) << bad;
    EXPECT_NE(why.find("a valid ECMAScript regular expression"), std::string::npos)
        << bad << ": " << why;
  }
}

TEST(ContextValue, CheckDirectly) {
  policy::ContextVariable v{"x", "^[a-z0-9./]+$", std::nullopt};
  std::string why;
  std::optional<std::regex> re = policy::compile_context_pattern(v.pattern, why);
  ASSERT_TRUE(re.has_value()) << why;
  EXPECT_EQ(policy::check_context_value(v, *re, "a/b.c"), "");
  EXPECT_EQ(policy::check_context_value(v, *re, "../a"), "value contains a \"..\" path segment");
  EXPECT_EQ(policy::check_context_value(v, *re, "a/.."), "value contains a \"..\" path segment");
  EXPECT_EQ(policy::check_context_value(v, *re, "a/..b"), "");
  EXPECT_EQ(policy::check_context_value(v, *re, "A"),
            "value does not match the pattern ^[a-z0-9./]+$");
}

TEST(ContextAssignment, Parse) {
  std::string name, value, why;
  EXPECT_TRUE(policy::parse_context_assignment("customer_id=a=b", name, value, why));
  EXPECT_EQ(name, "customer_id");
  EXPECT_EQ(value, "a=b");
  EXPECT_TRUE(policy::parse_context_assignment("x=", name, value, why));
  EXPECT_EQ(value, "");
  EXPECT_FALSE(policy::parse_context_assignment("novalue", name, value, why));
  EXPECT_EQ(why, "expected NAME=VALUE");
  EXPECT_FALSE(policy::parse_context_assignment("1x=2", name, value, why));
  EXPECT_NE(why.find("not a context variable name"), std::string::npos);
  EXPECT_FALSE(policy::parse_context_assignment("=v", name, value, why));
}

TEST(ContextName, Validity) {
  EXPECT_TRUE(policy::valid_context_name("customer_id"));
  EXPECT_TRUE(policy::valid_context_name("_x9"));
  EXPECT_TRUE(policy::valid_context_name(std::string(64, 'a')));
  EXPECT_FALSE(policy::valid_context_name(std::string(65, 'a')));
  EXPECT_FALSE(policy::valid_context_name(""));
  EXPECT_FALSE(policy::valid_context_name("9x"));
  EXPECT_FALSE(policy::valid_context_name("a-b"));
  EXPECT_FALSE(policy::valid_context_name("a.b"));
}

TEST(Expand, ReplacesDeclaredValues) {
  std::map<std::string, std::optional<std::string>> values{{"a", "1"}, {"b", "two"}};
  policy::Expansion e = policy::expand_placeholders("/x/${a}/${b}${a}.txt", values);
  EXPECT_EQ(e.text, "/x/1/two1.txt");
  EXPECT_TRUE(e.problems.empty());
  EXPECT_FALSE(e.unresolved);
  EXPECT_EQ(policy::expand_placeholders("no placeholder $a {b}", values).text,
            "no placeholder $a {b}");
}

TEST(Expand, UnresolvedKeepsPlaceholder) {
  std::map<std::string, std::optional<std::string>> values{{"a", std::nullopt}, {"b", "2"}};
  policy::Expansion e = policy::expand_placeholders("/${a}/${b}", values);
  EXPECT_EQ(e.text, "/${a}/2");
  EXPECT_TRUE(e.unresolved);
  EXPECT_TRUE(e.problems.empty());
}

TEST(Expand, Problems) {
  std::map<std::string, std::optional<std::string>> values{{"a", "1"}};
  policy::Expansion undeclared = policy::expand_placeholders("/${nope}/${a}", values);
  ASSERT_EQ(undeclared.problems.size(), 1u);
  EXPECT_EQ(undeclared.problems[0],
            "undeclared context variable ${nope}; declare it under /context");
  EXPECT_EQ(undeclared.text, "/${nope}/1");

  policy::Expansion open = policy::expand_placeholders("/${a}/${a", values);
  ASSERT_EQ(open.problems.size(), 1u);
  EXPECT_EQ(open.problems[0], "unterminated \"${\"; write ${name}");

  policy::Expansion empty = policy::expand_placeholders("${}", values);
  ASSERT_EQ(empty.problems.size(), 1u);
  EXPECT_NE(empty.problems[0].find("\"${}\" is not a valid placeholder"), std::string::npos);

  policy::Expansion bad = policy::expand_placeholders("${a b}", values);
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_NE(bad.problems[0].find("not a valid placeholder"), std::string::npos);
}

TEST(Expand, ValuesAreNotExpandedRecursively) {
  std::map<std::string, std::optional<std::string>> values{{"a", "${b}"}, {"b", "secret"}};
  policy::Expansion e = policy::expand_placeholders("${a}", values);
  EXPECT_EQ(e.text, "${b}");
  EXPECT_TRUE(e.problems.empty());
}

TEST(Expand, HasPlaceholder) {
  EXPECT_TRUE(policy::has_placeholder("/a/${b}"));
  EXPECT_TRUE(policy::has_placeholder("${"));
  EXPECT_FALSE(policy::has_placeholder("/a/$b"));
  EXPECT_FALSE(policy::has_placeholder("/a/{b}"));
}

}  // namespace
