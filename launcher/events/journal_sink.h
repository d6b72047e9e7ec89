// `--events journal`: every event as one entry of the systemd journal, sent in journald's native
// protocol (systemd.journal-fields(7), "Native Journal Protocol") to
// /run/systemd/journal/socket (or $ENCLOSURE_JOURNAL_SOCKET). An entry carries MESSAGE (the
// human line), MESSAGE_ID (fixed per event type), PRIORITY (warning for deny and budget, info
// otherwise), SYSLOG_IDENTIFIER=enclosure and ENCLOSURE_* fields: RUN, SEQ, TYPE, PID,
// MANIFEST, MANIFEST_DIGEST and JSON (the event's line).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/events/event.h"

namespace launcher {

inline constexpr const char* kJournalSocket = "/run/systemd/journal/socket";
inline constexpr const char* kJournalSocketEnv = "ENCLOSURE_JOURNAL_SOCKET";

// The MESSAGE_ID of an event type: 32 lower-case hex digits, fixed forever (journalctl
// MESSAGE_ID=... selects one type across hosts and versions); empty for an unknown type.
std::string_view journal_message_id(std::string_view type);

// syslog priority: 4 (warning) for deny and budget, 6 (info) for every other type.
int journal_priority(std::string_view type);

// The fields of one event's journal entry, in the order they are sent.
std::vector<std::pair<std::string, std::string>> journal_fields(const nlohmann::ordered_json& event,
                                                                const std::string& line);

// One entry in the native protocol: KEY=VALUE\n, or for a value with a newline KEY\n, its
// length as 64-bit little-endian, the value and \n.
std::string journal_entry(const std::vector<std::pair<std::string, std::string>>& fields);

// A sink sending to the journal socket at `socket_path` (empty: $ENCLOSURE_JOURNAL_SOCKET, else
// kJournalSocket). Null with `error` set when there is no socket to send to.
std::unique_ptr<EventSink> open_journal_sink(const std::string& socket_path, std::string& error);

}  // namespace launcher
