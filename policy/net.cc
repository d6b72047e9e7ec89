#include "policy/net.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace policy {

std::string Cidr::address_text() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof buf);
  return buf;
}

std::string Cidr::to_string() const {
  return address_text() + "/" + std::to_string(prefix);
}

namespace {

bool prefix_equal(const uint8_t* a, const uint8_t* b, unsigned bits) {
  unsigned whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool host_bits_zero(const uint8_t* a, unsigned total_bits, unsigned prefix) {
  for (unsigned bit = prefix; bit < total_bits; ++bit) {
    if (a[bit / 8] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

}  // namespace

bool Cidr::contains(const Cidr& inner) const {
  if (v6 != inner.v6 || inner.prefix < prefix) return false;
  return prefix_equal(addr.data(), inner.addr.data(), prefix);
}

bool Cidr::covers_ipv4_mapped() const {
  if (!v6 || prefix > 96) return false;
  static constexpr std::array<uint8_t, 16> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return prefix_equal(addr.data(), kMapped.data(), prefix);
}

Parsed<Cidr> parse_cidr(std::string_view text) {
  const std::string kExpected =
      "an IPv4 or IPv6 block such as \"10.20.0.0/16\" or \"2001:db8::/32\"";
  std::string address(text);
  int prefix = -1;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    address = std::string(text.substr(0, slash));
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return {std::nullopt, kExpected};
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return {std::nullopt, kExpected};
      prefix = prefix * 10 + (c - '0');
    }
  }
  Cidr cidr;
  if (inet_pton(AF_INET, address.c_str(), cidr.addr.data()) == 1) {
    cidr.v6 = false;
    if (prefix < 0) prefix = 32;
    if (prefix > 32) return {std::nullopt, "an IPv4 prefix length of 0 to 32"};
  } else if (inet_pton(AF_INET6, address.c_str(), cidr.addr.data()) == 1) {
    cidr.v6 = true;
    if (prefix < 0) prefix = 128;
    if (prefix > 128) return {std::nullopt, "an IPv6 prefix length of 0 to 128"};
  } else {
    return {std::nullopt, kExpected};
  }
  cidr.prefix = static_cast<uint8_t>(prefix);
  if (!host_bits_zero(cidr.addr.data(), cidr.v6 ? 128 : 32, cidr.prefix)) {
    // Say which block was probably meant.
    Cidr masked = cidr;
    for (unsigned bit = cidr.prefix; bit < (cidr.v6 ? 128u : 32u); ++bit) {
      masked.addr[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    }
    return {std::nullopt,
            "a block without host bits (did you mean \"" + masked.to_string() + "\"?)"};
  }
  // IPv4-mapped IPv6 (::ffff:a.b.c.d/96+) is the same destination as the IPv4 block.
  static constexpr std::array<uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (cidr.v6 && cidr.prefix >= 96 &&
      std::memcmp(cidr.addr.data(), kMappedPrefix.data(), kMappedPrefix.size()) == 0) {
    Cidr v4;
    v4.v6 = false;
    std::memcpy(v4.addr.data(), cidr.addr.data() + 12, 4);
    v4.prefix = static_cast<uint8_t>(cidr.prefix - 96);
    return {v4, {}};
  }
  return {cidr, {}};
}

std::vector<PortRange> merge_port_ranges(std::vector<PortRange> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<PortRange> out;
  for (const PortRange& r : ranges) {
    if (!out.empty() &&
        static_cast<uint32_t>(r.first) <= static_cast<uint32_t>(out.back().last) + 1) {
      out.back().last = std::max(out.back().last, r.last);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::string format_port_ranges(const std::vector<PortRange>& ranges) {
  std::string out;
  for (const PortRange& r : ranges) {
    if (!out.empty()) out += ", ";
    out += std::to_string(r.first);
    if (r.last != r.first) out += "-" + std::to_string(r.last);
  }
  return out;
}

bool port_ranges_contain(const std::vector<PortRange>& outer, const std::vector<PortRange>& inner) {
  for (const PortRange& in : inner) {
    bool covered = std::any_of(outer.begin(), outer.end(), [&](const PortRange& out) {
      return out.first <= in.first && in.last <= out.last;
    });
    if (!covered) return false;
  }
  return true;
}

bool valid_host_pattern(std::string_view host, std::string& why) {
  std::string_view name = host;
  if (name.substr(0, 2) == "*.") name.remove_prefix(2);
  if (name.empty() || name.size() > 253) {
    why = "a DNS name of 1 to 253 characters";
    return false;
  }
  size_t labels = 0;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63) {
      why = "a DNS name whose labels have 1 to 63 characters (no empty label, no trailing dot)";
      return false;
    }
    if (label.front() == '-' || label.back() == '-') {
      why = "a DNS name whose labels do not start or end with '-'";
      return false;
    }
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok) {
        why = (c == ':' || c == '[' || c == ']') ? "a DNS name; write addresses as \"cidr\""
              : (c >= 'A' && c <= 'Z')           ? "a lower-case DNS name"
              : c == '*' ? "a DNS name, with '*' only as a whole first label (\"*.example.com\")"
                         : "a DNS name of letters, digits, '-' and '.'";
        return false;
      }
    }
    ++labels;
    start = dot + 1;
  }
  if (host.substr(0, 2) == "*." && labels < 2) {
    why = "a wildcard over a registered domain (\"*.example.com\"), not over a top-level domain";
    return false;
  }
  // An address written as a host would bypass the resolver: it belongs in "cidr". That covers
  // dotted quads, and every other form the C library reads as an IPv4 address ("127.1",
  // "0x7f000001", "2130706433"); a top-level label is never all digits either.
  std::string_view last_label = name.substr(name.rfind('.') + 1);
  bool numeric_tld = std::all_of(last_label.begin(), last_label.end(),
                                 [](char c) { return c >= '0' && c <= '9'; });
  in_addr ignored{};
  if (numeric_tld || inet_aton(std::string(name).c_str(), &ignored) != 0) {
    why = "a DNS name; write addresses as \"cidr\"";
    return false;
  }
  return true;
}

bool host_pattern_matches(std::string_view pattern, std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  auto lower_equal = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      char x = a[i], y = b[i];
      if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
      if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
      if (x != y) return false;
    }
    return true;
  };
  if (pattern.substr(0, 2) == "*.") {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    if (name.size() <= suffix.size()) return false;
    return lower_equal(name.substr(name.size() - suffix.size()), suffix);
  }
  return lower_equal(pattern, name);
}

namespace {

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool label_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::vector<std::string_view> pattern_labels(std::string_view pattern) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= pattern.size()) {
    size_t dot = pattern.find('.', start);
    if (dot == std::string_view::npos) dot = pattern.size();
    out.push_back(pattern.substr(start, dot - start));
    start = dot + 1;
  }
  return out;
}

struct ClassBlock {
  std::array<uint8_t, 16> addr;
  uint8_t prefix;
  AddressClass cls;
};

AddressClass classify_ipv4(const uint8_t* a) {
  static constexpr ClassBlock kBlocks[] = {
      {{0}, 8, AddressClass::unspecified},
      {{127}, 8, AddressClass::loopback},
      {{10}, 8, AddressClass::private_address},
      {{172, 16}, 12, AddressClass::private_address},
      {{192, 168}, 16, AddressClass::private_address},
      {{100, 64}, 10, AddressClass::private_address},
      {{169, 254}, 16, AddressClass::link_local},
      {{224}, 4, AddressClass::multicast},
      {{240}, 4, AddressClass::reserved},  // includes 255.255.255.255
  };
  for (const ClassBlock& b : kBlocks) {
    if (prefix_equal(a, b.addr.data(), b.prefix)) return b.cls;
  }
  return AddressClass::public_address;
}

// The IPv4 address an IPv6 address carries, or nullptr.
const uint8_t* embedded_ipv4(const std::array<uint8_t, 16>& a) {
  static constexpr std::array<uint8_t, 16> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr std::array<uint8_t, 16> kCompatible{};
  static constexpr std::array<uint8_t, 16> kNat64{0x00, 0x64, 0xff, 0x9b};
  static constexpr std::array<uint8_t, 16> k6to4{0x20, 0x02};
  if (prefix_equal(a.data(), kMapped.data(), 96) ||
      prefix_equal(a.data(), kCompatible.data(), 96) || prefix_equal(a.data(), kNat64.data(), 96)) {
    return a.data() + 12;
  }
  if (prefix_equal(a.data(), k6to4.data(), 16)) return a.data() + 2;
  return nullptr;
}

}  // namespace

bool host_pattern_matches_labels(std::string_view pattern, const std::vector<std::string>& labels) {
  bool wildcard = pattern.substr(0, 2) == "*.";
  if (wildcard) pattern.remove_prefix(2);
  std::vector<std::string_view> want = pattern_labels(pattern);
  if (wildcard ? labels.size() <= want.size() : labels.size() != want.size()) return false;
  size_t offset = labels.size() - want.size();
  for (size_t i = 0; i < want.size(); ++i) {
    if (!label_equal(labels[offset + i], want[i])) return false;
  }
  return true;
}

bool valid_host_labels(const std::vector<std::string>& labels) {
  if (labels.empty()) return false;
  return std::all_of(labels.begin(), labels.end(), [](const std::string& label) {
    if (label.empty() || label.size() > 63) return false;
    return std::all_of(label.begin(), label.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
    });
  });
}

bool same_dns_name(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!label_equal(a[i], b[i])) return false;
  }
  return true;
}

AddressClass classify_address(const Cidr& address) {
  if (!address.v6) return classify_ipv4(address.addr.data());
  const std::array<uint8_t, 16>& a = address.addr;
  static constexpr std::array<uint8_t, 16> kUnspecified{};
  static constexpr std::array<uint8_t, 16> kLoopback{0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 0, 1};
  if (a == kUnspecified) return AddressClass::unspecified;
  if (a == kLoopback) return AddressClass::loopback;
  if (const uint8_t* v4 = embedded_ipv4(a)) return classify_ipv4(v4);
  static constexpr ClassBlock kBlocks[] = {
      {{0xfc}, 7, AddressClass::private_address},
      {{0xfe, 0xc0}, 10, AddressClass::private_address},  // deprecated site-local
      {{0xfe, 0x80}, 10, AddressClass::link_local},
      {{0xff}, 8, AddressClass::multicast},
  };
  for (const ClassBlock& b : kBlocks) {
    if (prefix_equal(a.data(), b.addr.data(), b.prefix)) return b.cls;
  }
  return AddressClass::public_address;
}

const char* to_string(AddressClass c) {
  switch (c) {
    case AddressClass::public_address:
      return "public";
    case AddressClass::loopback:
      return "loopback";
    case AddressClass::private_address:
      return "private";
    case AddressClass::link_local:
      return "link-local";
    case AddressClass::unspecified:
      return "unspecified";
    case AddressClass::multicast:
      return "multicast";
    case AddressClass::reserved:
      return "reserved";
  }
  return "reserved";
}

}  // namespace policy
