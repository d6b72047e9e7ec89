// Network values of the manifest: CIDR blocks, port ranges and host names.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/units.h"

namespace policy {

// An IPv4 or IPv6 block. IPv4-mapped IPv6 blocks (::ffff:a.b.c.d/n, n >= 96) are stored as IPv4.
struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};  // IPv4 uses the first 4 bytes, network byte order
  uint8_t prefix = 0;              // 0..32 or 0..128

  std::string to_string() const;
  // The block's address alone, without the prefix length: "192.0.2.1", "2001:db8::1".
  std::string address_text() const;
  // True when every address of `inner` is also in this block (same family only).
  bool contains(const Cidr& inner) const;
  // True when an IPv6 block covers all of ::ffff:0:0/96, so it also admits every IPv4 address
  // reached through an IPv4-mapped socket address.
  bool covers_ipv4_mapped() const;
  auto operator<=>(const Cidr&) const = default;
};

// "10.20.0.0/16", "2001:db8::/32", "127.0.0.1" (a single address). Host bits must be zero.
Parsed<Cidr> parse_cidr(std::string_view text);

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  auto operator<=>(const PortRange&) const = default;
};

// Sorts and merges overlapping and adjacent ranges: [80, 443, "440-450", 81] -> 80-81, 440-450.
std::vector<PortRange> merge_port_ranges(std::vector<PortRange> ranges);
std::string format_port_ranges(const std::vector<PortRange>& ranges);
// True when every port of `inner` is in `outer`; both merged.
bool port_ranges_contain(const std::vector<PortRange>& outer, const std::vector<PortRange>& inner);

// A DNS name matched exactly ("api.openai.com") or a wildcard over one or more labels
// ("*.example.com", which does not match "example.com" itself). Lower case, no trailing dot.
bool valid_host_pattern(std::string_view host, std::string& why);
bool host_pattern_matches(std::string_view pattern, std::string_view name);

// The same match on a name as DNS carries it: its labels as raw bytes, leftmost first, without
// the root. Labels compare with an ASCII case fold and equal length, so a label holding a
// literal '.' ("com.example") never equals the pattern's labels "com" and "example", and
// "*.example.com" matches one or more labels under example.com but never example.com itself.
bool host_pattern_matches_labels(std::string_view pattern, const std::vector<std::string>& labels);
// True when every label is 1 to 63 bytes of letters, digits, '-' and '_' and the name has at
// least one label: what a host name can be. Anything else (a '.', a NUL, binary) is refused.
bool valid_host_labels(const std::vector<std::string>& labels);
// Two names' labels equal under the ASCII case fold.
bool same_dns_name(const std::vector<std::string>& a, const std::vector<std::string>& b);

// What an answered address is, for DNS rebinding protection. IPv4 embedded in IPv6
// (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16) is
// classified as the IPv4 address it carries.
enum class AddressClass {
  public_address,
  loopback,
  private_address,
  link_local,
  unspecified,
  multicast,
  reserved
};
AddressClass classify_address(const Cidr& address);
// "public", "loopback", "private", "link-local", "unspecified", "multicast", "reserved".
const char* to_string(AddressClass c);

}  // namespace policy
