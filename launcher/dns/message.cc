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

// The labels of a domain-name rdf, read from its uncompressed wire form [len][bytes]...[0].
std::vector<std::string> labels_of(const ldns_rdf* rdf) {
  std::vector<std::string> out;
  if (!rdf || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME) return out;
  const uint8_t* data = ldns_rdf_data(rdf);
  size_t size = ldns_rdf_size(rdf), at = 0;
  while (at < size && data[at] != 0) {
    size_t len = data[at];
    if (at + 1 + len > size) break;
    out.emplace_back(reinterpret_cast<const char*>(data + at + 1), len);
    at += 1 + len;
  }
  return out;
}

DnsName dns_name_of(const ldns_rdf* rdf) {
  return {name_of(rdf), labels_of(rdf)};
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

std::vector<uint8_t> to_wire(const ldns_pkt* p) {
  uint8_t* wire = nullptr;
  size_t wire_size = 0;
  std::vector<uint8_t> out;
  if (ldns_pkt2wire(&wire, p, &wire_size) == LDNS_STATUS_OK) out.assign(wire, wire + wire_size);
  std::free(wire);
  return out;
}

// Why a parsed message is not a query the resolver answers; empty when it is one.
std::string query_shape_error(const ldns_pkt* p) {
  if (ldns_pkt_qr(p)) return "a response, not a query";
  if (ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY) return "not a standard query (opcode)";
  ldns_rr_list* q = ldns_pkt_question(p);
  if (!q || ldns_rr_list_rr_count(q) != 1) return "not exactly one question";
  if (ldns_pkt_ancount(p) != 0 || ldns_pkt_nscount(p) != 0)
    return "a query with answer or authority records";
  if (ldns_rr_get_class(ldns_rr_list_rr(q, 0)) != LDNS_RR_CLASS_IN) return "a class other than IN";
  return {};
}

bool same_address(const ldns_rdf* rdf, const policy::Cidr& address) {
  size_t want = address.v6 ? 16 : 4;
  return rdf && ldns_rdf_size(rdf) == want &&
         std::memcmp(ldns_rdf_data(rdf), address.addr.data(), want) == 0;
}

bool removed_record(const ldns_rr* rr, const std::vector<policy::Cidr>& removed) {
  ldns_rr_type type = ldns_rr_get_type(rr);
  if (type != LDNS_RR_TYPE_A && type != LDNS_RR_TYPE_AAAA) return false;
  const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
  return std::any_of(removed.begin(), removed.end(),
                     [&](const policy::Cidr& c) { return same_address(rdf, c); });
}

}  // namespace

std::optional<DnsQuestion> parse_dns_query(const uint8_t* data, size_t size, std::string& error) {
  Packet p = parse(data, size, error);
  if (!p) return std::nullopt;
  error = query_shape_error(p.get());
  if (!error.empty()) return std::nullopt;
  ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_question(p.get()), 0);
  DnsQuestion out;
  out.id = ldns_pkt_id(p.get());
  out.name = name_of(ldns_rr_owner(rr));
  out.labels = labels_of(ldns_rr_owner(rr));
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

std::vector<uint8_t> dns_upstream_query(const DnsQuestion& question, uint16_t id) {
  // The name from its labels, as wire bytes: [len][label]...[0].
  std::vector<uint8_t> wire_name;
  for (const std::string& label : question.labels) {
    wire_name.push_back(static_cast<uint8_t>(label.size()));
    wire_name.insert(wire_name.end(), label.begin(), label.end());
  }
  wire_name.push_back(0);
  ldns_rdf* name = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, wire_name.size(), wire_name.data());
  if (!name) return {};
  Packet p(ldns_pkt_query_new(name, static_cast<ldns_rr_type>(question.type), LDNS_RR_CLASS_IN,
                              LDNS_RD));
  if (!p) return {};
  ldns_pkt_set_id(p.get(), id);
  ldns_pkt_set_edns_udp_size(p.get(), 1232);
  return to_wire(p.get());
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

namespace {

bool in_chain(const std::vector<DnsName>& chain, const std::vector<std::string>& labels) {
  return std::any_of(chain.begin(), chain.end(),
                     [&](const DnsName& n) { return policy::same_dns_name(n.labels, labels); });
}

// The CNAME target of `current` among `answers`, or nullopt.
std::optional<DnsName> cname_of(const ldns_rr_list* answers, const DnsName& current) {
  size_t count = answers ? ldns_rr_list_rr_count(answers) : 0;
  for (size_t i = 0; i < count; ++i) {
    ldns_rr* rr = ldns_rr_list_rr(answers, i);
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
        policy::same_dns_name(labels_of(ldns_rr_owner(rr)), current.labels)) {
      return dns_name_of(ldns_rr_rdf(rr, 0));
    }
  }
  return std::nullopt;
}

void read_addresses(const ldns_rr_list* answers, const std::vector<DnsName>& chain, DnsAnswer& a) {
  size_t count = answers ? ldns_rr_list_rr_count(answers) : 0;
  for (size_t i = 0; i < count; ++i) {
    ldns_rr* rr = ldns_rr_list_rr(answers, i);
    ldns_rr_type type = ldns_rr_get_type(rr);
    if (type != LDNS_RR_TYPE_A && type != LDNS_RR_TYPE_AAAA) continue;
    // Only addresses of names in the checked chain are admitted.
    if (!in_chain(chain, labels_of(ldns_rr_owner(rr)))) continue;
    const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
    size_t want = type == LDNS_RR_TYPE_A ? 4 : 16;
    if (!rdf || ldns_rdf_size(rdf) != want) continue;
    DnsAddress addr;
    addr.address.v6 = type == LDNS_RR_TYPE_AAAA;
    std::memcpy(addr.address.addr.data(), ldns_rdf_data(rdf), want);
    addr.address.prefix = static_cast<uint8_t>(want * 8);
    addr.ttl = ldns_rr_ttl(rr);
    addr.owner = name_of(ldns_rr_owner(rr));
    a.addresses.push_back(addr);
  }
}

}  // namespace

std::optional<DnsAnswer> read_dns_answer(const uint8_t* data, size_t size,
                                         const DnsQuestion& question,
                                         const std::function<bool(const DnsName&)>& allowed,
                                         std::string& error) {
  Packet p = parse(data, size, error);
  if (!p) return std::nullopt;
  if (!ldns_pkt_qr(p.get())) {
    error = "a query, not a response";
    return std::nullopt;
  }
  ldns_rr_list* q = ldns_pkt_question(p.get());
  if (!q || ldns_rr_list_rr_count(q) != 1 ||
      !policy::same_dns_name(labels_of(ldns_rr_owner(ldns_rr_list_rr(q, 0))), question.labels)) {
    error = "the response is not for the question asked";
    return std::nullopt;
  }
  DnsAnswer a;
  a.id = ldns_pkt_id(p.get());
  a.rcode = ldns_pkt_get_rcode(p.get());
  a.truncated = ldns_pkt_tc(p.get());
  std::vector<DnsName> chain{{question.name, question.labels}};
  const ldns_rr_list* answers = ldns_pkt_answer(p.get());
  // Follow the CNAME chain from the question's name; every name in it must be allowed.
  for (size_t hop = 0; hop < 16; ++hop) {
    std::optional<DnsName> next = cname_of(answers, chain.back());
    if (!next || in_chain(chain, next->labels)) break;  // the end, or a loop
    if (!allowed(*next)) {
      a.refused_name = next->text;
      for (const DnsName& n : chain)
        a.chain.push_back(n.text);
      return a;
    }
    chain.push_back(*next);
  }
  for (const DnsName& n : chain)
    a.chain.push_back(n.text);
  read_addresses(answers, chain, a);
  return a;
}

std::vector<uint8_t> dns_reply_without(const uint8_t* data, size_t size,
                                       const std::vector<policy::Cidr>& removed, uint16_t id) {
  std::string error;
  Packet p = parse(data, size, error);
  if (!p) return {};
  ldns_rr_list* kept = ldns_rr_list_new();
  const ldns_rr_list* answers = ldns_pkt_answer(p.get());
  size_t count = answers ? ldns_rr_list_rr_count(answers) : 0;
  for (size_t i = 0; i < count; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(answers, i);
    if (!removed_record(rr, removed)) ldns_rr_list_push_rr(kept, ldns_rr_clone(rr));
  }
  ldns_rr_list_deep_free(ldns_pkt_answer(p.get()));
  ldns_pkt_set_answer(p.get(), kept);
  ldns_pkt_set_ancount(p.get(), static_cast<uint16_t>(ldns_rr_list_rr_count(kept)));
  ldns_rr_list_deep_free(ldns_pkt_authority(p.get()));
  ldns_pkt_set_authority(p.get(), ldns_rr_list_new());
  ldns_pkt_set_nscount(p.get(), 0);
  ldns_rr_list_deep_free(ldns_pkt_additional(p.get()));
  ldns_pkt_set_additional(p.get(), ldns_rr_list_new());
  ldns_pkt_set_arcount(p.get(), 0);
  ldns_pkt_set_id(p.get(), id);
  return to_wire(p.get());
}

}  // namespace launcher
