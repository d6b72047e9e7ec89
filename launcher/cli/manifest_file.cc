#include "launcher/cli/manifest_file.h"

#include <iostream>

#include "launcher/base/error.h"
#include "launcher/base/file.h"

namespace launcher {
namespace {

// Manifests, context files and OCI seccomp profiles are small; a larger file is a mistake.
constexpr size_t kMaxManifestBytes = size_t{16} << 20;

// The reader policy::load uses for the OCI seccomp profile that /syscalls/profile names.
std::optional<std::string> read_profile(const std::string& path, std::string& error) {
  try {
    return read_file(path, kMaxManifestBytes);
  } catch (const LaunchError& e) {
    error = e.what();
    return std::nullopt;
  }
}

// The --context-file object: NAME: "value" strings.
void add_context_file(const std::string& context_file, policy::ContextValues& out) {
  std::string text;
  try {
    text = read_file(context_file, kMaxManifestBytes);
  } catch (const LaunchError& e) {
    throw InvalidManifest({}, e.what());
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for numbers beyond a double (1e400).
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw InvalidManifest({}, context_file + ": not valid JSON: " + what);
  }
  if (!j.is_object()) {
    throw InvalidManifest({}, context_file + ": expected a JSON object of NAME: \"value\" strings");
  }
  for (const auto& [name, value] : j.items()) {
    if (!policy::valid_context_name(name)) {
      throw InvalidManifest({}, context_file + ": /" + name + ": not a context variable name");
    }
    if (!value.is_string()) {
      throw InvalidManifest({}, context_file + ": /" + name + ": expected a string value");
    }
    out[name] = value.get<std::string>();
  }
}

}  // namespace

void print_invalid_manifest(const std::string& command, const InvalidManifest& invalid) {
  for (const std::string& line : invalid.diagnostics())
    std::cerr << line << "\n";
  if (*invalid.what()) std::cerr << "enclosure " << command << ": " << invalid.what() << "\n";
}

policy::ContextValues collect_context(const std::vector<std::string>& assignments,
                                      const std::string& context_file) {
  policy::ContextValues out;
  if (!context_file.empty()) add_context_file(context_file, out);
  for (const std::string& a : assignments) {
    std::string name, value, why;
    if (!policy::parse_context_assignment(a, name, value, why)) {
      throw InvalidManifest({}, "--context " + a + ": " + why);
    }
    out[name] = value;
  }
  return out;
}

policy::Manifest load_manifest_or_throw(const std::string& path,
                                        const policy::ContextValues& context,
                                        bool allow_unresolved) {
  std::string text;
  try {
    text = path == kStandardInput ? read_standard_input(kMaxManifestBytes)
                                  : read_file(path, kMaxManifestBytes);
  } catch (const LaunchError& e) {
    throw InvalidManifest({e.what()});
  }
  policy::LoadOptions options{.allow_unresolved = allow_unresolved, .read_profile = read_profile};
  policy::LoadResult r = policy::load_manifest(text, context, options);
  if (!r.manifest) {
    std::vector<std::string> lines;
    for (const policy::Diagnostic& d : r.diagnostics.errors()) {
      lines.push_back(
          policy::format_diagnostic(path == kStandardInput ? "standard input" : path, d));
    }
    throw InvalidManifest(std::move(lines));
  }
  return std::move(*r.manifest);
}

policy::Manifest load_manifest_or_throw(const ManifestSource& source) {
  return load_manifest_or_throw(source.path, collect_context(source.context, source.context_file),
                                source.allow_unresolved);
}

CompiledManifest compile_manifest_or_throw(const ManifestSource& source) {
  policy::Manifest manifest = load_manifest_or_throw(source);
  policy::CompileResult compiled = policy::compile(manifest);
  if (!compiled.plan) throw InvalidManifest({}, source.path + ": " + compiled.error);
  return {std::move(manifest), std::move(*compiled.plan)};
}

}  // namespace launcher
