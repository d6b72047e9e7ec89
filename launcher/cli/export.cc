// enclosure export --format oci-seccomp [-o OUT] FILE: the compiled system call profile as an
// OCI runtime-spec seccomp object.
#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/base/fd.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"
#include "policy/compile.h"
#include "policy/oci_seccomp.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
// reader (a runtime, a config management run) never sees half a profile. Throws LaunchError
// (exit 1) when it cannot.
void write_file_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) throw LaunchError(tmp + ": cannot create: " + std::strerror(errno), exit_code::kFailure);
  if (!write_all(fd.get(), text.data(), text.size())) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw LaunchError(tmp + ": write failed: " + std::strerror(err), exit_code::kFailure);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw LaunchError(path + ": cannot write: " + std::strerror(err), exit_code::kFailure);
  }
}

// The OCI runtime-spec seccomp object of the manifest's syscall profile; a profile OCI cannot
// state is an invalid manifest for export ("FILE: why").
nlohmann::json oci_profile(const std::string& file, const policy::Manifest& manifest) {
  std::string error;
  std::optional<nlohmann::json> oci =
      policy::export_oci_seccomp(policy::compile_seccomp(manifest.syscalls), error);
  if (!oci) throw InvalidManifest({}, file + ": " + error);
  return std::move(*oci);
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
  ManifestSource source{.allow_unresolved = true};
  std::string format, output;
  options.add_options()("help,h", "show this help")("format", po::value(&format),
                                                    "the output format: oci-seccomp (required)")(
      "output,o", po::value(&output), "write to this file instead of standard output")(
      "context", po::value(&source.context)->composing(),
      "NAME=VALUE for a context variable (repeatable); the profile does not depend on them, but "
      "they are validated")("context-file", po::value(&source.context_file),
                            "a JSON object of context values");
  po::variables_map vm;
  if (auto done = parse_command_line("export", args, options, po::value(&source.path), 1, vm))
    return *done;
  if (format != "oci-seccomp") {
    std::cerr << "enclosure export: --format "
              << (format.empty() ? "is required" : "\"" + format + "\" is not known")
              << "; the format this build writes is oci-seccomp\n";
    return exit_code::kInvalid;
  }
  if (source.path.empty()) {
    return usage_error("export", "no manifest file given", exit_code::kInvalid);
  }
  std::string text = oci_profile(source.path, load_manifest_or_throw(source)).dump(2) + "\n";
  if (output.empty() || output == "-") {
    std::cout << text << std::flush;
    return std::cout ? exit_code::kSuccess : exit_code::kFailure;
  }
  write_file_atomically(output, text);
  return exit_code::kSuccess;
}

}  // namespace launcher
