// Fuzz target: manifest text (with and without context values) through parse, validation,
// context expansion, digest, compile, explain and diff. Nothing may crash, leak or hit UB.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/compile.h"
#include "policy/diff.h"
#include "policy/explain.h"
#include "policy/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // The first line, when it starts with "#ctx ", carries NAME=VALUE context assignments.
  policy::ContextValues context;
  if (text.substr(0, 5) == "#ctx ") {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(5, nl == std::string_view::npos ? text.size() - 5 : nl - 5);
    std::string name, value, why;
    if (policy::parse_context_assignment(line, name, value, why)) context[name] = value;
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  for (bool allow_unresolved : {false, true}) {
    policy::LoadResult r = policy::load_manifest(text, context, {allow_unresolved});
    if (!r.manifest) continue;
    policy::CompileResult c = policy::compile(*r.manifest);
    (void)c;
    (void)policy::explain_text(*r.manifest);
    (void)policy::diff_text(policy::diff_manifests(*r.manifest, *r.manifest));
  }
  return 0;
}
