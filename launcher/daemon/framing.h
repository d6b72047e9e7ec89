// How `enclosure run --daemon` and `enclosure daemon` exchange messages: a SOCK_STREAM unix
// socket carrying frames of a 4-byte length (host order) and a payload. On a control connection
// the payloads are JSON requests and replies (launcher/daemon/protocol.h; one reply per request,
// in order); a request may carry one file descriptor and a reply several (SCM_RIGHTS, with the
// frame's first bytes). On an events connection the
// daemon sends each kernel record of the caller's enclosure as one frame, raw
// (bpf/event_decoder.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/base/error.h"
#include "launcher/base/fd.h"
#include "launcher/daemon/protocol.h"

namespace launcher {

struct Frame {
  std::string payload;
  std::vector<UniqueFd> fds;  // the descriptors that came with it, in the order sent
};

// recvmsg(2) of up to `size` bytes; every descriptor that came with them (SCM_RIGHTS) is added
// to `fds`. Returns what recvmsg returns (errno set on -1).
ssize_t receive_with_descriptors(int socket, char* buf, size_t size, int flags,
                                 std::vector<UniqueFd>& fds);

// Appends one frame (length + payload) to `out`.
void encode_frame(std::string& out, std::string_view payload);

// Sends (part of) `data` with `fds` attached to its first byte; returns what sendmsg returns
// (errno set on -1). At most kMaxFramedDescriptors descriptors.
constexpr size_t kMaxFramedDescriptors = 4;
ssize_t send_with_descriptors(int socket, std::string_view data, const std::vector<int>& fds,
                              int flags);

// Writes one frame, blocking, with an optional descriptor. Throws LaunchError naming `what`.
void send_frame(int socket, std::string_view payload, int fd, const std::string& what);
// Reads one whole frame, blocking. nullopt on a clean EOF at a frame boundary; throws LaunchError
// on errors, a truncated frame or one above kMaxDaemonFrame.
std::optional<Frame> receive_frame(int socket, const std::string& what);

// Extracts a frame from the front of `buffer` when it holds a whole one; sets `bad` when the
// length is above kMaxDaemonFrame.
std::optional<std::string> take_frame(std::string& buffer, bool& bad);

// One request and its reply on a control connection; throws LaunchError when the connection
// fails or the reply is not a JSON object, and DaemonRefusal when the daemon answers
// {"ok": false, "error": ...}. The reply is the JSON object of the request's reply type.
class DaemonRefusal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The descriptors that came with the reply go to `reply_fds` when given (closed otherwise).
nlohmann::json daemon_call(int socket, const DaemonRequest& request, int fd = -1,
                           std::vector<UniqueFd>* reply_fds = nullptr);

// daemon_call with the reply decoded as `Reply`; a malformed reply throws LaunchError naming the
// field.
template <class Reply>
Reply call_daemon(int socket, const DaemonRequest& request, int fd = -1,
                  std::vector<UniqueFd>* reply_fds = nullptr) {
  nlohmann::json j = daemon_call(socket, request, fd, reply_fds);
  std::string error;
  std::optional<Reply> reply = Reply::from_json(j, error);
  if (!reply) {
    throw LaunchError(std::string("enclosure daemon: ") + op_of(request) +
                      ": a malformed reply: " + error);
  }
  return std::move(*reply);
}

// Connects to the daemon's socket; -1 with errno set when it cannot.
UniqueFd connect_daemon(const std::string& path);

}  // namespace launcher
