// enclosure export: a manifest's compiled policy in another system's format.
#pragma once

#include "launcher/commands.h"

namespace launcher {

// enclosure export --format oci-seccomp [--context NAME=VALUE]... [--context-file F] [-o OUT] FILE
// Writes the manifest's system call profile as an OCI runtime-spec seccomp object (runc, crun,
// Docker's --security-opt seccomp=FILE). Exit status: 0, or 2 for a usage error, an invalid
// manifest or a profile that OCI cannot state; 1 when the output cannot be written.
int command_export(const Args& args);

}  // namespace launcher
