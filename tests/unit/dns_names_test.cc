// The resolver's pure decisions: host patterns matched on wire-format labels (ASCII case fold,
// exact label boundaries), which labels can be a host name, and the address classes that DNS
// rebinding protection keeps out of `host` rules unless they say "private": true.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/net.h"

namespace {

using Labels = std::vector<std::string>;
using policy::AddressClass;

AddressClass class_of(const std::string& text) {
  policy::Parsed<policy::Cidr> c = policy::parse_cidr(text);
  EXPECT_TRUE(c.value) << text << ": " << c.error;
  return c.value ? policy::classify_address(*c.value) : AddressClass::reserved;
}

// An address as a resolver reads it from an AAAA record: 16 bytes, never folded to IPv4.
AddressClass class_of_aaaa(const std::string& text) {
  policy::Cidr c;
  c.v6 = true;
  c.prefix = 128;
  EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), c.addr.data()), 1) << text;
  return policy::classify_address(c);
}

}  // namespace

TEST(DnsNames, ExactPatternMatchesTheSameLabelsInAnyAsciiCase) {
  EXPECT_TRUE(policy::host_pattern_matches_labels("api.example.com", {"api", "example", "com"}));
  EXPECT_TRUE(policy::host_pattern_matches_labels("api.example.com", {"API", "Example", "COM"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("api.example.com", {"example", "com"}));
  EXPECT_FALSE(
      policy::host_pattern_matches_labels("api.example.com", {"x", "api", "example", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("api.example.com", {"api.example", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("api.example.com", {}));
}

TEST(DnsNames, WildcardMatchesOneOrMoreLabelsUnderTheDomainButNeverTheApex) {
  EXPECT_TRUE(policy::host_pattern_matches_labels("*.example.com", {"a", "example", "com"}));
  EXPECT_TRUE(policy::host_pattern_matches_labels("*.example.com", {"a", "b", "example", "com"}));
  EXPECT_TRUE(policy::host_pattern_matches_labels("*.example.com", {"A", "EXAMPLE", "Com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("*.example.com", {"example", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("*.example.com", {"EXAMPLE", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("*.example.com", {"badexample", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("*.example.com", {"a", "example", "org"}));
}

TEST(DnsNames, ALabelHoldingADotNeverMatchesTwoPatternLabels) {
  // [evil][com.example][com] prints as "evil.com\.example.com": a text suffix match would
  // admit it under *.example.com.
  EXPECT_FALSE(
      policy::host_pattern_matches_labels("*.example.com", {"evil", "com.example", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("*.example.com", {"evil.example", "com"}));
  EXPECT_FALSE(policy::host_pattern_matches_labels("api.example.com", {"api", "example.com"}));
}

TEST(DnsNames, CaseFoldIsAsciiOnly) {
  // 0xC1 and 0xE1 are 'Á' and 'á' in Latin-1: a locale-aware fold would equate them.
  EXPECT_FALSE(policy::host_pattern_matches_labels("*.example.com",
                                                   {"a", std::string("ex\xc1mple"), "com"}));
  EXPECT_FALSE(policy::same_dns_name({std::string("\xc1")}, {std::string("\xe1")}));
  EXPECT_TRUE(policy::same_dns_name({"Api", "EXAMPLE"}, {"api", "example"}));
  EXPECT_FALSE(policy::same_dns_name({"api", "example"}, {"api.example"}));
}

TEST(DnsNames, OnlyHostNameLabelsAreValid) {
  EXPECT_TRUE(policy::valid_host_labels({"api", "Example", "com"}));
  EXPECT_TRUE(policy::valid_host_labels({"_dmarc", "x-1", "com"}));
  EXPECT_TRUE(policy::valid_host_labels({std::string(63, 'a'), "com"}));
  EXPECT_FALSE(policy::valid_host_labels({}));
  EXPECT_FALSE(policy::valid_host_labels({std::string(64, 'a'), "com"}));
  EXPECT_FALSE(policy::valid_host_labels({"evil", "com.example", "com"}));
  EXPECT_FALSE(policy::valid_host_labels({"a b", "com"}));
  EXPECT_FALSE(policy::valid_host_labels({std::string("a\0b", 3), "com"}));
  EXPECT_FALSE(policy::valid_host_labels({"", "com"}));
}

TEST(DnsNames, ClassifiesIpv4Ranges) {
  EXPECT_EQ(class_of("93.184.216.34"), AddressClass::public_address);
  EXPECT_EQ(class_of("8.8.8.8"), AddressClass::public_address);
  EXPECT_EQ(class_of("127.0.0.1"), AddressClass::loopback);
  EXPECT_EQ(class_of("127.255.255.254"), AddressClass::loopback);
  EXPECT_EQ(class_of("10.0.0.5"), AddressClass::private_address);
  EXPECT_EQ(class_of("172.16.0.1"), AddressClass::private_address);
  EXPECT_EQ(class_of("172.31.255.255"), AddressClass::private_address);
  EXPECT_EQ(class_of("172.32.0.1"), AddressClass::public_address);
  EXPECT_EQ(class_of("192.168.1.1"), AddressClass::private_address);
  EXPECT_EQ(class_of("100.64.0.1"), AddressClass::private_address);
  EXPECT_EQ(class_of("100.128.0.1"), AddressClass::public_address);
  EXPECT_EQ(class_of("169.254.169.254"), AddressClass::link_local);
  EXPECT_EQ(class_of("0.0.0.0"), AddressClass::unspecified);
  EXPECT_EQ(class_of("0.1.2.3"), AddressClass::unspecified);
  EXPECT_EQ(class_of("224.0.0.1"), AddressClass::multicast);
  EXPECT_EQ(class_of("239.255.255.250"), AddressClass::multicast);
  EXPECT_EQ(class_of("240.0.0.1"), AddressClass::reserved);
  EXPECT_EQ(class_of("255.255.255.255"), AddressClass::reserved);
}

TEST(DnsNames, ClassifiesIpv6Ranges) {
  EXPECT_EQ(class_of_aaaa("2606:4700::1111"), AddressClass::public_address);
  EXPECT_EQ(class_of_aaaa("::1"), AddressClass::loopback);
  EXPECT_EQ(class_of_aaaa("::"), AddressClass::unspecified);
  EXPECT_EQ(class_of_aaaa("fd00::1"), AddressClass::private_address);
  EXPECT_EQ(class_of_aaaa("fc00::1"), AddressClass::private_address);
  EXPECT_EQ(class_of_aaaa("fec0::1"), AddressClass::private_address);
  EXPECT_EQ(class_of_aaaa("fe80::1"), AddressClass::link_local);
  EXPECT_EQ(class_of_aaaa("ff02::1"), AddressClass::multicast);
}

TEST(DnsNames, Ipv6EmbeddingAnIpv4AddressIsClassifiedAsThatAddress) {
  EXPECT_EQ(class_of_aaaa("::ffff:127.0.0.1"), AddressClass::loopback);
  EXPECT_EQ(class_of_aaaa("::ffff:10.1.2.3"), AddressClass::private_address);
  EXPECT_EQ(class_of_aaaa("::ffff:8.8.8.8"), AddressClass::public_address);
  EXPECT_EQ(class_of_aaaa("::127.0.0.1"), AddressClass::loopback);  // IPv4-compatible
  EXPECT_EQ(class_of_aaaa("64:ff9b::7f00:1"), AddressClass::loopback);
  EXPECT_EQ(class_of_aaaa("64:ff9b::a9fe:a9fe"), AddressClass::link_local);
  EXPECT_EQ(class_of_aaaa("64:ff9b::808:808"), AddressClass::public_address);
  EXPECT_EQ(class_of_aaaa("2002:a9fe:a9fe::1"), AddressClass::link_local);  // 6to4
  // As the manifest parser folds it: ::ffff:127.0.0.1 is the IPv4 address.
  EXPECT_EQ(class_of("::ffff:127.0.0.1"), AddressClass::loopback);
}

TEST(DnsNames, ClassNamesAreTheEventsWords) {
  EXPECT_STREQ(policy::to_string(AddressClass::public_address), "public");
  EXPECT_STREQ(policy::to_string(AddressClass::loopback), "loopback");
  EXPECT_STREQ(policy::to_string(AddressClass::private_address), "private");
  EXPECT_STREQ(policy::to_string(AddressClass::link_local), "link-local");
  EXPECT_STREQ(policy::to_string(AddressClass::unspecified), "unspecified");
  EXPECT_STREQ(policy::to_string(AddressClass::multicast), "multicast");
  EXPECT_STREQ(policy::to_string(AddressClass::reserved), "reserved");
}
