#include "policy/path.h"

#include "policy/context.h"

namespace policy {

std::string check_absolute_path(std::string_view path, bool template_ok) {
  if (path.empty()) return "an absolute path, got an empty string";
  if (path.size() > kMaxPathLength) return "a path of at most 4095 bytes";
  bool starts_with_placeholder = template_ok && path.substr(0, 2) == "${";
  if (path.front() != '/' && !starts_with_placeholder) {
    return "an absolute path (starting with \"/\")";
  }
  for (char c : path) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "a path without control characters";
  }
  if (path == "/") return {};
  if (path.back() == '/') {
    size_t last = path.find_last_not_of('/');
    // "//" and "///" mean the root.
    std::string meant =
        last == std::string_view::npos ? "/" : std::string(path.substr(0, last + 1));
    return "a path without a trailing \"/\" (did you mean \"" + meant + "\"?)";
  }
  size_t start = path.front() == '/' ? 1 : 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view segment = path.substr(start, slash - start);
    if (segment.empty()) return "a path without empty segments (\"//\")";
    if (segment == ".") return "a path without \".\" segments";
    if (segment == "..") return "a path without \"..\" segments";
    if (segment.size() > 255) return "a path whose segments have at most 255 bytes";
    start = slash + 1;
  }
  return {};
}

bool path_is_under(std::string_view path, std::string_view dir) {
  if (dir == "/") return !path.empty() && path.front() == '/';
  if (path.size() < dir.size() || path.compare(0, dir.size(), dir) != 0) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

std::vector<std::string> path_segments(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string parent_path(std::string_view path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string check_nameable_path(std::string_view path) {
  if (!valid_utf8(path)) return "it is not valid UTF-8 (a manifest is JSON text)";
  if (path.find("${") != std::string_view::npos) {
    return "it contains \"${\", which a manifest reads as a context placeholder";
  }
  std::string why = check_absolute_path(path);
  return why.empty() ? "" : "a manifest needs " + why;
}

}  // namespace policy
