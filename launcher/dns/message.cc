#include "launcher/dns/message.h"

#include <ldns/ldns.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace launcher {
namespace {

struct PacketDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using Packet = std::unique_ptr<ldns_pkt, PacketDeleter>;

std::string name_of(const ldns_rdf* rdf) {
  if (!rdf) return {};
  char* text = ldns_rdf2str(rdf);
  if (!text) return {};
  std::string s(text);
  std::free(text);
  if (!s.empty() && s.back() == '.') s.pop_back();
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Packet parse(const uint8_t* data, size_t size, std::string& error) {
  ldns_pkt* p = nullptr;
  ldns_status st = ldns_wire2pkt(&p, data, size);
  if (st != LDNS_STATUS_OK) {
    error = std::string("not a DNS message: ") + ldns_get_errorstr_by_id(st);
    return nullptr;
  }
  return Packet(p);
}

}  // namespace

std::optional<DnsQuestion> parse_dns_query(const uint8_t* data, size_t size, std::string& error) {
  Packet p = parse(data, size, error);
  if (!p) return std::nullopt;
  if (ldns_pkt_qr(p.get())) {
    error = "a response, not a query";
    return std::nullopt;
  }
  ldns_rr_list* q = ldns_pkt_question(p.get());
  if (!q || ldns_rr_list_rr_count(q) != 1) {
    error = "not exactly one question";
    return std::nullopt;
  }
  ldns_rr* rr = ldns_rr_list_rr(q, 0);
  DnsQuestion out;
  out.id = ldns_pkt_id(p.get());
  out.name = name_of(ldns_rr_owner(rr));
  out.type = static_cast<uint16_t>(ldns_rr_get_type(rr));
  ldns_buffer* buf = ldns_buffer_new(32);
  if (buf && ldns_rr_type2buffer_str(buf, ldns_rr_get_type(rr)) == LDNS_STATUS_OK) {
    out.type_name.assign(reinterpret_cast<const char*>(ldns_buffer_begin(buf)),
                         ldns_buffer_position(buf));
  }
  if (buf) ldns_buffer_free(buf);
  if (out.name.empty()) out.name = ".";
  return out;
}

std::vector<uint8_t> dns_error_response(const uint8_t* query, size_t size, uint8_t rcode) {
  std::string error;
  Packet p = parse(query, size, error);
  if (!p) {
    // Not even a query: answer with the header alone, id echoed, so the client stops waiting.
    std::vector<uint8_t> out(12, 0);
    if (size >= 2) std::memcpy(out.data(), query, 2);
    out[2] = 0x80;
    out[3] = rcode & 0x0f;
    return out;
  }
  ldns_pkt_set_qr(p.get(), true);
  ldns_pkt_set_ra(p.get(), true);
  ldns_pkt_set_aa(p.get(), false);
  ldns_pkt_set_rcode(p.get(), rcode);
  uint8_t* wire = nullptr;
  size_t wire_size = 0;
  std::vector<uint8_t> out;
  if (ldns_pkt2wire(&wire, p.get(), &wire_size) == LDNS_STATUS_OK)
    out.assign(wire, wire + wire_size);
  std::free(wire);
  return out;
}

void set_dns_id(std::vector<uint8_t>& message, uint16_t id) {
  if (message.size() < 2) return;
  message[0] = static_cast<uint8_t>(id >> 8);
  message[1] = static_cast<uint8_t>(id & 0xff);
}

std::optional<DnsAnswer> read_dns_answer(const uint8_t* data, size_t size,
                                         const DnsQuestion& question,
                                         const std::function<bool(const std::string&)>& allowed,
                                         std::string& error) {
  Packet p = parse(data, size, error);
  if (!p) return std::nullopt;
  if (!ldns_pkt_qr(p.get())) {
    error = "a query, not a response";
    return std::nullopt;
  }
  ldns_rr_list* q = ldns_pkt_question(p.get());
  if (!q || ldns_rr_list_rr_count(q) != 1 ||
      name_of(ldns_rr_owner(ldns_rr_list_rr(q, 0))) != question.name) {
    error = "the response is not for the question asked";
    return std::nullopt;
  }
  DnsAnswer a;
  a.id = ldns_pkt_id(p.get());
  a.rcode = ldns_pkt_get_rcode(p.get());
  a.truncated = ldns_pkt_tc(p.get());
  a.chain.push_back(question.name);
  ldns_rr_list* answers = ldns_pkt_answer(p.get());
  size_t count = answers ? ldns_rr_list_rr_count(answers) : 0;
  // Follow the CNAME chain from the question's name; every name in it must be allowed.
  for (size_t hop = 0; hop < 16; ++hop) {
    const std::string& current = a.chain.back();
    std::string next;
    for (size_t i = 0; i < count; ++i) {
      ldns_rr* rr = ldns_rr_list_rr(answers, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && name_of(ldns_rr_owner(rr)) == current) {
        next = name_of(ldns_rr_rdf(rr, 0));
        break;
      }
    }
    if (next.empty()) break;
    if (std::find(a.chain.begin(), a.chain.end(), next) != a.chain.end()) break;  // a loop
    if (!allowed(next)) {
      a.refused_name = next;
      return a;
    }
    a.chain.push_back(next);
  }
  for (size_t i = 0; i < count; ++i) {
    ldns_rr* rr = ldns_rr_list_rr(answers, i);
    ldns_rr_type type = ldns_rr_get_type(rr);
    if (type != LDNS_RR_TYPE_A && type != LDNS_RR_TYPE_AAAA) continue;
    std::string owner = name_of(ldns_rr_owner(rr));
    // Only addresses of names in the checked chain are admitted.
    if (std::find(a.chain.begin(), a.chain.end(), owner) == a.chain.end()) continue;
    const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
    size_t want = type == LDNS_RR_TYPE_A ? 4 : 16;
    if (!rdf || ldns_rdf_size(rdf) != want) continue;
    DnsAddress addr;
    addr.address.v6 = type == LDNS_RR_TYPE_AAAA;
    std::memcpy(addr.address.addr.data(), ldns_rdf_data(rdf), want);
    addr.address.prefix = static_cast<uint8_t>(want * 8);
    addr.ttl = ldns_rr_ttl(rr);
    addr.owner = owner;
    a.addresses.push_back(addr);
  }
  return a;
}

}  // namespace launcher
