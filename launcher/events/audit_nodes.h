// The logs of several nodes given to `enclosure audit verify` at once: which files belong to
// which node, and the time span each covers. Pure: files in, groups out.
#pragma once

#include <string>
#include <vector>

#include "launcher/events/audit_chain.h"

namespace launcher {

struct AuditNode {
  std::string name;           // "hostname (machine-id 3d1219c7…)", "hostname", or a directory
  std::vector<size_t> files;  // indices into the files, in the order given
};

// Groups the files by the host that wrote them: the hostname of their signed heads, of their
// collector's started record or of their start records' "received"; a file that names none
// goes with the previous file of its directory, else its directory is the node.
std::vector<AuditNode> group_audit_files_by_node(const std::vector<AuditInput>& files);

struct AuditTimeSpan {
  std::string first;  // the "ts" of the first line that has one
  std::string last;   // ... and of the last
};
AuditTimeSpan audit_time_span(const std::vector<AuditInput>& files);

}  // namespace launcher
