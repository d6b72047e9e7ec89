#include "launcher/cli/manifest_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/fd.h"

namespace launcher {

std::optional<std::string> read_text_file(const std::string& path, std::string& error) {
  constexpr size_t kMaxManifestBytes = 16 << 20;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    error = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
    error = path + ": is a directory";
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = path + ": read failed: " + std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxManifestBytes) {
      error = path + ": larger than 16 MiB";
      return std::nullopt;
    }
  }
  return out;
}

bool collect_context(const std::vector<std::string>& assignments, const std::string& context_file,
                     policy::ContextValues& out, std::string& error) {
  if (!context_file.empty()) {
    auto text = read_text_file(context_file, error);
    if (!text) return false;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      // parse_error, and out_of_range for numbers beyond a double (1e400).
      std::string what = e.what();
      if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
      error = context_file + ": not valid JSON: " + what;
      return false;
    }
    if (!j.is_object()) {
      error = context_file + ": expected a JSON object of NAME: \"value\" strings";
      return false;
    }
    for (const auto& [name, value] : j.items()) {
      if (!policy::valid_context_name(name)) {
        error = context_file + ": /" + name + ": not a context variable name";
        return false;
      }
      if (!value.is_string()) {
        error = context_file + ": /" + name + ": expected a string value";
        return false;
      }
      out[name] = value.get<std::string>();
    }
  }
  for (const std::string& a : assignments) {
    std::string name, value, why;
    if (!policy::parse_context_assignment(a, name, value, why)) {
      error = "--context " + a + ": " + why;
      return false;
    }
    out[name] = value;
  }
  return true;
}

LoadedManifest load_manifest_file(const std::string& path, const policy::ContextValues& context,
                                  const policy::LoadOptions& options) {
  LoadedManifest out;
  std::string error;
  auto text = read_text_file(path, error);
  if (!text) {
    out.errors.push_back(error);
    return out;
  }
  // An OCI seccomp profile that /syscalls/profile names is read here, like the manifest.
  policy::LoadOptions with_reader = options;
  if (!with_reader.read_profile) with_reader.read_profile = read_text_file;
  policy::LoadResult r = policy::load_manifest(*text, context, with_reader);
  for (const policy::Diagnostic& d : r.diagnostics.errors()) {
    out.errors.push_back(policy::format_diagnostic(path, d));
  }
  out.manifest = std::move(r.manifest);
  return out;
}

}  // namespace launcher
