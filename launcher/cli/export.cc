// enclosure export --format oci-seccomp [-o OUT] FILE: the compiled system call profile as an
// OCI runtime-spec seccomp object.
#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "launcher/base/fd.h"
#include "launcher/cli/manifest_file.h"
#include "policy/compile.h"
#include "policy/oci_seccomp.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
// reader (a runtime, a config management run) never sees half a profile.
bool write_file(const std::string& path, const std::string& text, std::string& error) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) {
    error = tmp + ": cannot create: " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = tmp + ": write failed: " + std::strerror(errno);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": cannot write: " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int command_export(const Args& args) {
  po::options_description options(
      "Usage: enclosure export --format oci-seccomp [options] FILE\n\n"
      "Writes the manifest's compiled system call profile in the OCI runtime-spec seccomp format\n"
      "(runc, crun, Docker's --security-opt seccomp=OUT), so that a container runtime applies the\n"
      "same policy. Denied calls become SCMP_ACT_ERRNO with errnoRet 1 (EPERM), or\n"
      "SCMP_ACT_KILL_PROCESS with \"action\": \"kill\"; clone3 becomes errnoRet 38 (ENOSYS). OCI\n"
      "has no way to hand a denied call to the enclosure's supervisor, so denials are not logged.\n"
      "Exit status: 0; 2 for a usage error, an invalid manifest or a profile OCI cannot state;\n"
      "1 when OUT cannot be written.\n\nOptions");
  std::vector<std::string> context;
  std::string context_file, file, format, output;
  options.add_options()("help,h", "show this help")("format", po::value(&format),
                                                    "the output format: oci-seccomp (required)")(
      "output,o", po::value(&output), "write to this file instead of standard output")(
      "context", po::value(&context)->composing(),
      "NAME=VALUE for a context variable (repeatable); the profile does not depend on them, but "
      "they are validated")("context-file", po::value(&context_file),
                            "a JSON object of context values");
  po::variables_map vm;
  if (auto done = parse_command_line("export", args, options, po::value(&file), 1, vm))
    return *done;
  if (format != "oci-seccomp") {
    std::cerr << "enclosure export: --format "
              << (format.empty() ? "is required" : "\"" + format + "\" is not known")
              << "; the format this build writes is oci-seccomp\n";
    return 2;
  }
  if (file.empty()) {
    std::cerr << "enclosure export: no manifest file given\n" << options;
    return 2;
  }
  policy::ContextValues values;
  std::string error;
  if (!collect_context(context, context_file, values, error)) {
    std::cerr << "enclosure export: " << error << "\n";
    return 2;
  }
  LoadedManifest loaded = load_manifest_file(file, values, {.allow_unresolved = true});
  if (!loaded.manifest) {
    for (const std::string& e : loaded.errors)
      std::cerr << e << "\n";
    return 2;
  }
  std::optional<nlohmann::json> oci =
      policy::export_oci_seccomp(policy::compile_seccomp(loaded.manifest->syscalls), error);
  if (!oci) {
    std::cerr << "enclosure export: " << file << ": " << error << "\n";
    return 2;
  }
  std::string text = oci->dump(2) + "\n";
  if (output.empty() || output == "-") {
    std::cout << text << std::flush;
    return std::cout ? 0 : 1;
  }
  if (!write_file(output, text, error)) {
    std::cerr << "enclosure export: " << error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace launcher
