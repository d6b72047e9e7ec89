// Readiness and status for the service manager: sd_notify(3) of libsystemd, loaded when a
// process that runs as a service (the daemon, the collector) first has something to say.
//
// Why not linked: libsystemd and the five libraries it loads with it (libgcrypt, libgpg-error,
// liblzma, libzstd, liblz4) cost every start of the launcher ~2 ms of dynamic loading and
// relocation (a main() linked with -lsystemd: 2.8 ms, without: 0.8 ms; hyperfine, 200 runs), and
// `enclosure run` starts once per tool call of an agent. Only a service notifies.
#pragma once

#include <string>

namespace launcher {

// Sends `state` ("READY=1\nSTATUS=...") to the service manager, as sd_notify(0, state) does.
// Without $NOTIFY_SOCKET (not started by systemd with Type=notify) nothing is loaded and nothing
// is sent. Throws LaunchError when a manager waits for the message and libsystemd.so.0 cannot be
// loaded or the message cannot be sent: the unit would otherwise time out without a word.
void notify_service_manager(const std::string& state);

}  // namespace launcher
