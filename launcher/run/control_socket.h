// A run's control socket: how `enclosure ps` and `enclosure stop` reach a live enclosure. Each
// launcher listens on RUN.sock in its user's control directory (below) while its agent runs; a
// client sends one request line ("status" or "stop") and reads one JSON line back. Only the
// launcher's own user and root are answered, and never a process inside an enclosure (by cgroup
// identity, launcher/run/peer_process.h): an agent must not stop or inspect its siblings.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"

namespace launcher {

// The control directory of user `uid`: /run/enclosure/runs for root; for another user
// $XDG_RUNTIME_DIR/enclosure/runs (when it is that user's), else /run/user/UID/enclosure/runs.
std::string control_directory(uid_t uid);

// The directories `enclosure ps` reads: root reads its own and every user's under /run/user;
// another user reads only its own.
std::vector<std::string> control_directories_to_list(uid_t uid);

class ControlSocket {
 public:
  // Listens on DIR/RUN.sock (the directory made 0700 when missing; refused when it is not the
  // user's own or open to others). Throws LaunchError saying why.
  explicit ControlSocket(const std::string& run_id);
  ~ControlSocket();  // removes the socket file; clients waiting on `stop` see the end
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  const std::string& path() const { return path_; }
  int listen_fd() const { return listener_.get(); }
  bool is_client(int fd) const { return clients_.count(fd) > 0; }

  // The listener is readable: accepts every waiting client and returns the descriptors to watch
  // for their request. A client that may not ask gets its refusal in answer to its request.
  std::vector<int> accept_clients();

  // A client is readable: its request ("status", "stop"), or nullopt after closing a client that
  // sent something else, hung up or was refused (it is answered {"refused": why} first).
  std::optional<std::string> read_request(int fd);

  // Answers a client with one JSON line; `keep_open` (stop) holds its connection until this
  // socket is destroyed, so `enclosure stop` can wait for the run's end.
  void answer(int fd, const nlohmann::json& reply, bool keep_open);

 private:
  std::string refusal_for(int fd) const;
  void close_client(int fd);

  std::string path_;
  UniqueFd listener_;
  UniqueFd v2_root_;  // where peers' cgroups are opened, to tell whether they are enclosures
  uint64_t v2_root_id_ = 0;
  std::map<int, std::string> clients_;  // descriptor -> why it is refused ("" when it is not)
  std::vector<UniqueFd> held_;          // answered `stop` clients, closed with the socket
};

// The client side (`enclosure ps`, `enclosure stop`): sends `request` to the socket at `path`
// and returns the reply line, or nullopt when no launcher listens there any more (`stale` set:
// the launcher was killed before it could remove its socket). Waits at most `timeout_ms`.
std::optional<nlohmann::json> ask_control_socket(const std::string& path,
                                                 const std::string& request, int timeout_ms,
                                                 bool& stale, UniqueFd* keep = nullptr);

}  // namespace launcher
