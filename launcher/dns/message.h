// DNS messages for the enclosure's resolver, read and written with ldns (no hand-written wire
// parsing): the question of a query, a REFUSED answer, and the checked content of an upstream
// answer (every name of a CNAME chain allowed, addresses with their TTLs).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "policy/net.h"

namespace launcher {

// A name as DNS carries it: its labels (raw bytes, leftmost first, no root) for matching, and
// its presentation text (lower case, no trailing dot, a '.' inside a label escaped) for events.
struct DnsName {
  std::string text;
  std::vector<std::string> labels;
};

struct DnsQuestion {
  uint16_t id = 0;
  std::string name;  // lower case, no trailing dot
  std::vector<std::string> labels;
  uint16_t type = 0;  // 1 A, 28 AAAA, ...
  std::string type_name;
};

// nullopt when the bytes are not a standard query (opcode QUERY) of exactly one question of
// class IN, with no answer or authority records (additional records are read and ignored).
std::optional<DnsQuestion> parse_dns_query(const uint8_t* data, size_t size, std::string& error);

// The query the upstream is sent: built afresh from the question alone (name, type, class IN,
// recursion desired) with `id` and the resolver's own EDNS OPT record (UDP size 1232, no
// options, no DO bit). Nothing else of the agent's message goes upstream.
std::vector<uint8_t> dns_upstream_query(const DnsQuestion& question, uint16_t id);

// The query turned into a response with RCODE (5 REFUSED, 2 SERVFAIL), no records.
std::vector<uint8_t> dns_error_response(const uint8_t* query, size_t size, uint8_t rcode);

// Replaces the 16-bit message id (first two bytes).
void set_dns_id(std::vector<uint8_t>& message, uint16_t id);

struct DnsAddress {
  policy::Cidr address;  // /32 or /128, as the record carries it
  uint32_t ttl = 0;
  std::string owner;  // the name the record was for
};

struct DnsAnswer {
  uint16_t id = 0;
  uint8_t rcode = 0;
  bool truncated = false;
  std::vector<std::string> chain;     // the question's name, then each CNAME target
  std::vector<DnsAddress> addresses;  // A and AAAA records of names in the chain
  std::string refused_name;           // set when a name of the chain is not allowed
};

// Reads an upstream response to `question`. `allowed(name)` says whether a name may be
// resolved; a CNAME to a name it refuses makes refused_name non-empty (the caller answers
// REFUSED and admits nothing). Names compare on their labels (ASCII case fold), never on text.
// nullopt when the bytes are not a response to that question.
std::optional<DnsAnswer> read_dns_answer(const uint8_t* data, size_t size,
                                         const DnsQuestion& question,
                                         const std::function<bool(const DnsName&)>& allowed,
                                         std::string& error);

// The upstream response with every A and AAAA record whose address is in `removed` taken out
// of the answer section, the authority and additional sections dropped, and the id set to
// `id`. Empty when the bytes cannot be rebuilt.
std::vector<uint8_t> dns_reply_without(const uint8_t* data, size_t size,
                                       const std::vector<policy::Cidr>& removed, uint16_t id);

}  // namespace launcher
