// The channel between the supervisor and the enclosure's pid 1 (and, until its execve, the
// agent process): a SOCK_SEQPACKET socket pair carrying one JSON object per packet and, for
// the seccomp listener and the master of the agent's terminal, one file descriptor.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"

namespace launcher {

struct ChannelMessage {
  nlohmann::json body;
  UniqueFd fd;  // set when the packet carried one (SCM_RIGHTS)
};

bool send_message(int sock, const nlohmann::json& body, int fd = -1);
// The same with the packet's text prepared by the caller: allocates nothing and makes only the
// sendmsg call (for the moment after the seccomp filter is loaded, see enclosure_init.cc).
bool send_prepared(int sock, const std::string& text, int fd);
// nullopt on EOF or error (errno tells which; EAGAIN when nothing is waiting).
std::optional<ChannelMessage> receive_message(int sock);

}  // namespace launcher
