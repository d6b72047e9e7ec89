// Durations, sizes and dollar amounts; CIDR blocks, port ranges and host names; absolute paths.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "policy/net.h"
#include "policy/path.h"
#include "policy/units.h"

namespace {

constexpr uint64_t kNs = 1;
constexpr uint64_t kUs = 1000 * kNs;
constexpr uint64_t kMs = 1000 * kUs;
constexpr uint64_t kSec = 1000 * kMs;
constexpr uint64_t kMin = 60 * kSec;
constexpr uint64_t kHour = 60 * kMin;
constexpr uint64_t kDay = 24 * kHour;

// ---- durations ---------------------------------------------------------------------------------

TEST(ParseDuration, EveryUnit) {
  struct Case {
    const char* text;
    uint64_t ns;
  };
  for (const Case& c : {Case{"1ns", 1}, Case{"7us", 7 * kUs}, Case{"300ms", 300 * kMs},
                        Case{"90s", 90 * kSec}, Case{"5m", 5 * kMin}, Case{"2h", 2 * kHour},
                        Case{"3d", 3 * kDay}, Case{"1000000000ns", kSec}}) {
    policy::Parsed<uint64_t> p = policy::parse_duration(c.text);
    ASSERT_TRUE(p) << c.text << ": " << p.error;
    EXPECT_EQ(*p.value, c.ns) << c.text;
    EXPECT_TRUE(p.error.empty());
  }
}

TEST(ParseDuration, Malformed) {
  const std::string generic = "a duration such as \"300ms\", \"90s\", \"5m\" or \"2h\"";
  const std::string unit = "a duration unit ns, us, ms, s, m, h or d";
  struct Case {
    const char* text;
    std::string error;
  };
  for (const Case& c :
       {Case{"", generic}, Case{"5", generic}, Case{"s", generic}, Case{"-1s", generic},
        Case{" 5s", generic}, Case{"+5s", generic}, Case{"5 s", unit}, Case{"5S", unit},
        Case{"5min", unit}, Case{"1.5s", unit}, Case{"5sec", unit}, Case{"5s ", unit},
        Case{"99999999999999999999999s", generic}}) {
    policy::Parsed<uint64_t> p = policy::parse_duration(c.text);
    EXPECT_FALSE(p) << c.text;
    EXPECT_EQ(p.error, c.error) << c.text;
  }
}

TEST(ParseDuration, ZeroIsRefusedInEveryUnit) {
  for (const char* text : {"0ns", "0s", "0ms", "0h", "00m"}) {
    policy::Parsed<uint64_t> p = policy::parse_duration(text);
    EXPECT_FALSE(p) << text;
    EXPECT_EQ(p.error, "a duration greater than zero") << text;
  }
}

TEST(ParseDuration, Overflow) {
  // 2^64 ns is about 584 years.
  EXPECT_TRUE(policy::parse_duration("18446744073709551615ns"));
  policy::Parsed<uint64_t> p = policy::parse_duration("18446744073709551615s");
  EXPECT_FALSE(p);
  EXPECT_EQ(p.error, "a duration of at most 500 years");
  EXPECT_FALSE(policy::parse_duration("213504d"));
  EXPECT_TRUE(policy::parse_duration("213503d"));
}

TEST(FormatDuration, ShortestExact) {
  EXPECT_EQ(policy::format_duration(0), "0s");
  EXPECT_EQ(policy::format_duration(300 * kMs), "300ms");
  EXPECT_EQ(policy::format_duration(90 * kSec), "90s");
  EXPECT_EQ(policy::format_duration(3600 * kSec), "1h");
  EXPECT_EQ(policy::format_duration(5 * kMin), "5m");
  EXPECT_EQ(policy::format_duration(2 * kDay), "2d");
  EXPECT_EQ(policy::format_duration(1500 * kMs), "1500ms");
  EXPECT_EQ(policy::format_duration(1), "1ns");
  EXPECT_EQ(policy::format_duration(1001), "1001ns");
}

TEST(FormatDuration, RoundTrips) {
  for (uint64_t ns : std::vector<uint64_t>{1, 999, 1000, 300 * kMs, 61 * kSec, 25 * kHour, 3 * kDay,
                                           18446744073709551615ULL}) {
    policy::Parsed<uint64_t> p = policy::parse_duration(policy::format_duration(ns));
    ASSERT_TRUE(p) << ns << " -> " << policy::format_duration(ns);
    EXPECT_EQ(*p.value, ns);
  }
}

// ---- sizes -------------------------------------------------------------------------------------

TEST(ParseSize, EveryUnit) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& c :
       {Case{"0B", 0}, Case{"1B", 1}, Case{"512KiB", 512ULL << 10}, Case{"50MiB", 50ULL << 20},
        Case{"2GiB", 2ULL << 30}, Case{"1TiB", 1ULL << 40}, Case{"1kB", 1000}, Case{"3MB", 3000000},
        Case{"2GB", 2000000000ULL}, Case{"1TB", 1000000000000ULL}}) {
    policy::Parsed<uint64_t> p = policy::parse_size(c.text);
    ASSERT_TRUE(p) << c.text << ": " << p.error;
    EXPECT_EQ(*p.value, c.bytes) << c.text;
  }
}

TEST(ParseSize, Malformed) {
  const std::string generic = "a size such as \"512KiB\" or \"2GiB\"";
  const std::string unit = "a size unit B, KiB, MiB, GiB, TiB, kB, MB, GB or TB";
  struct Case {
    const char* text;
    std::string error;
  };
  for (const Case& c :
       {Case{"", generic}, Case{"GiB", generic}, Case{"-1B", generic}, Case{"1", generic},
        Case{"1.5GiB", unit}, Case{"2gib", unit}, Case{"1KB", unit}, Case{"1 MiB", unit},
        Case{"1PiB", unit}, Case{"1b", unit}}) {
    policy::Parsed<uint64_t> p = policy::parse_size(c.text);
    EXPECT_FALSE(p) << c.text;
    EXPECT_EQ(p.error, c.error) << c.text;
  }
}

TEST(ParseSize, Overflow) {
  EXPECT_TRUE(policy::parse_size("16777215TiB"));
  policy::Parsed<uint64_t> p = policy::parse_size("16777216TiB");  // 2^64 bytes
  EXPECT_FALSE(p);
  EXPECT_EQ(p.error, "a size below 16EiB");
  EXPECT_TRUE(policy::parse_size("18446744073709551615B"));
  EXPECT_FALSE(policy::parse_size("18446744073709551616B"));
}

TEST(FormatSize, ExactOrBytes) {
  EXPECT_EQ(policy::format_size(0), "0B");
  EXPECT_EQ(policy::format_size(1), "1B");
  EXPECT_EQ(policy::format_size(1024), "1KiB");
  EXPECT_EQ(policy::format_size(1536), "1536B");
  EXPECT_EQ(policy::format_size(2ULL << 30), "2GiB");
  EXPECT_EQ(policy::format_size(1ULL << 40), "1TiB");
  EXPECT_EQ(policy::format_size(1000001), "1000001B");
  EXPECT_EQ(policy::format_size(3ULL << 20), "3MiB");
  EXPECT_EQ(policy::format_size(1025ULL << 20), "1025MiB");
}

TEST(FormatSize, RoundTrips) {
  for (uint64_t b : std::vector<uint64_t>{1, 1000, 4096, 5ULL << 30, (1ULL << 40) + 1024}) {
    policy::Parsed<uint64_t> p = policy::parse_size(policy::format_size(b));
    ASSERT_TRUE(p) << b;
    EXPECT_EQ(*p.value, b);
  }
}

TEST(FormatUsd, TrimsTrailingZerosKeepingCents) {
  EXPECT_EQ(policy::format_usd(0), "$0.00");
  EXPECT_EQ(policy::format_usd(5000), "$0.005");
  EXPECT_EQ(policy::format_usd(500000), "$0.50");
  EXPECT_EQ(policy::format_usd(1000000), "$1.00");
  EXPECT_EQ(policy::format_usd(1234567), "$1.234567");
  EXPECT_EQ(policy::format_usd(1), "$0.000001");
  EXPECT_EQ(policy::format_usd(12000000), "$12.00");
}

// ---- CIDR --------------------------------------------------------------------------------------

policy::Cidr cidr(const char* text) {
  policy::Parsed<policy::Cidr> p = policy::parse_cidr(text);
  EXPECT_TRUE(p) << text << ": " << p.error;
  return p ? *p.value : policy::Cidr{};
}

TEST(ParseCidr, Ipv4) {
  policy::Cidr c = cidr("10.20.0.0/16");
  EXPECT_FALSE(c.v6);
  EXPECT_EQ(c.prefix, 16);
  EXPECT_EQ(c.addr[0], 10);
  EXPECT_EQ(c.addr[1], 20);
  EXPECT_EQ(c.to_string(), "10.20.0.0/16");
  EXPECT_EQ(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(cidr("10.16.0.0/12").to_string(), "10.16.0.0/12");
}

TEST(ParseCidr, SingleAddress) {
  policy::Cidr v4 = cidr("127.0.0.1");
  EXPECT_FALSE(v4.v6);
  EXPECT_EQ(v4.prefix, 32);
  EXPECT_EQ(v4.to_string(), "127.0.0.1/32");
  policy::Cidr v6 = cidr("::1");
  EXPECT_TRUE(v6.v6);
  EXPECT_EQ(v6.prefix, 128);
  EXPECT_EQ(v6.to_string(), "::1/128");
}

TEST(ParseCidr, Ipv6) {
  policy::Cidr c = cidr("2001:db8::/32");
  EXPECT_TRUE(c.v6);
  EXPECT_EQ(c.prefix, 32);
  EXPECT_EQ(c.to_string(), "2001:db8::/32");
  EXPECT_EQ(cidr("2001:0DB8:0000::/48").to_string(), "2001:db8::/48");
  EXPECT_EQ(cidr("::/0").to_string(), "::/0");
}

TEST(ParseCidr, Ipv4MappedBecomesIpv4) {
  policy::Cidr c = cidr("::ffff:10.0.0.0/104");
  EXPECT_FALSE(c.v6);
  EXPECT_EQ(c.prefix, 8);
  EXPECT_EQ(c.to_string(), "10.0.0.0/8");
  EXPECT_EQ(c, cidr("10.0.0.0/8"));
  EXPECT_EQ(cidr("::ffff:192.168.1.7").to_string(), "192.168.1.7/32");
  EXPECT_EQ(cidr("::ffff:c0a8:0/120").to_string(), "192.168.0.0/24");
  EXPECT_EQ(cidr("::ffff:0:0/96").to_string(), "0.0.0.0/0");
  // Shorter than /96 it is not a block of IPv4 addresses.
  policy::Cidr wider = cidr("::fffe:0:0/95");
  EXPECT_TRUE(wider.v6);
}

TEST(ParseCidr, HostBitsSuggestTheBlock) {
  struct Case {
    const char* text;
    const char* meant;
  };
  for (const Case& c : {Case{"10.20.0.1/16", "10.20.0.0/16"}, Case{"10.31.0.0/12", "10.16.0.0/12"},
                        Case{"192.168.1.1/0", "0.0.0.0/0"}, Case{"2001:db8::1/32", "2001:db8::/32"},
                        Case{"::ffff:10.0.0.1/104", "::ffff:10.0.0.0/104"}}) {
    policy::Parsed<policy::Cidr> p = policy::parse_cidr(c.text);
    EXPECT_FALSE(p) << c.text;
    EXPECT_EQ(p.error, std::string("a block without host bits (did you mean \"") + c.meant + "\"?)")
        << c.text;
  }
}

TEST(ParseCidr, BadPrefixOrAddress) {
  const std::string generic = "an IPv4 or IPv6 block such as \"10.20.0.0/16\" or \"2001:db8::/32\"";
  struct Case {
    const char* text;
    std::string error;
  };
  for (const Case& c :
       {Case{"10.0.0.0/33", "an IPv4 prefix length of 0 to 32"},
        Case{"2001:db8::/129", "an IPv6 prefix length of 0 to 128"}, Case{"10.0.0.0/", generic},
        Case{"10.0.0.0/1234", generic}, Case{"10.0.0.0/-1", generic}, Case{"10.0.0.0/8/8", generic},
        Case{"10.0.0.0/ 8", generic}, Case{"/8", generic}, Case{"10.0.0/8", generic},
        Case{"256.0.0.0/8", generic}, Case{"example.com", generic}, Case{"", generic},
        Case{"10.0.0.0 /8", generic}, Case{"2001:db8:::/32", generic}}) {
    policy::Parsed<policy::Cidr> p = policy::parse_cidr(c.text);
    EXPECT_FALSE(p) << c.text;
    EXPECT_EQ(p.error, c.error) << c.text;
  }
}

TEST(Cidr, Contains) {
  EXPECT_TRUE(cidr("10.0.0.0/8").contains(cidr("10.20.0.0/16")));
  EXPECT_TRUE(cidr("10.0.0.0/8").contains(cidr("10.0.0.0/8")));
  EXPECT_TRUE(cidr("10.0.0.0/8").contains(cidr("10.255.255.255")));
  EXPECT_FALSE(cidr("10.0.0.0/8").contains(cidr("11.0.0.0/16")));
  EXPECT_FALSE(cidr("10.20.0.0/16").contains(cidr("10.0.0.0/8")));
  EXPECT_TRUE(cidr("0.0.0.0/0").contains(cidr("203.0.113.9")));
  // Prefixes that do not end on a byte.
  EXPECT_TRUE(cidr("10.16.0.0/12").contains(cidr("10.31.255.255")));
  EXPECT_FALSE(cidr("10.16.0.0/12").contains(cidr("10.32.0.0")));
  EXPECT_FALSE(cidr("10.16.0.0/12").contains(cidr("10.15.255.255")));
  // IPv6.
  EXPECT_TRUE(cidr("2001:db8::/32").contains(cidr("2001:db8:1::/48")));
  EXPECT_FALSE(cidr("2001:db8::/32").contains(cidr("2001:db9::/48")));
  EXPECT_TRUE(cidr("::/0").contains(cidr("2001:db8::1")));
  // Families never contain each other.
  EXPECT_FALSE(cidr("::/0").contains(cidr("10.0.0.1")));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(cidr("::1")));
}

TEST(Cidr, CoversIpv4Mapped) {
  EXPECT_TRUE(cidr("::/0").covers_ipv4_mapped());
  EXPECT_TRUE(cidr("::/80").covers_ipv4_mapped());
  EXPECT_TRUE(cidr("::fffe:0:0/95").covers_ipv4_mapped());
  EXPECT_FALSE(cidr("::/96").covers_ipv4_mapped());
  EXPECT_FALSE(cidr("2001:db8::/32").covers_ipv4_mapped());
  EXPECT_FALSE(cidr("::1").covers_ipv4_mapped());
  EXPECT_FALSE(cidr("0.0.0.0/0").covers_ipv4_mapped());      // an IPv4 block
  EXPECT_FALSE(cidr("::ffff:0:0/96").covers_ipv4_mapped());  // became 0.0.0.0/0
}

// ---- ports -------------------------------------------------------------------------------------

using Ranges = std::vector<policy::PortRange>;

TEST(PortRanges, MergeOverlapAndAdjacency) {
  EXPECT_EQ(policy::merge_port_ranges({{80, 80}, {443, 443}, {440, 450}, {81, 81}}),
            (Ranges{{80, 81}, {440, 450}}));
  EXPECT_EQ(policy::merge_port_ranges({{6, 10}, {1, 5}}), (Ranges{{1, 10}}));
  EXPECT_EQ(policy::merge_port_ranges({{1, 10}, {5, 20}}), (Ranges{{1, 20}}));
  EXPECT_EQ(policy::merge_port_ranges({{1, 100}, {50, 60}}), (Ranges{{1, 100}}));
  EXPECT_EQ(policy::merge_port_ranges({{22, 22}, {22, 22}}), (Ranges{{22, 22}}));
  EXPECT_EQ(policy::merge_port_ranges({{1, 5}, {7, 9}}), (Ranges{{1, 5}, {7, 9}}));
  EXPECT_EQ(policy::merge_port_ranges({{65535, 65535}, {65534, 65534}}), (Ranges{{65534, 65535}}));
  EXPECT_EQ(policy::merge_port_ranges({{1, 65535}, {65535, 65535}}), (Ranges{{1, 65535}}));
  EXPECT_EQ(policy::merge_port_ranges({}), Ranges{});
}

TEST(PortRanges, Format) {
  EXPECT_EQ(policy::format_port_ranges({{80, 81}, {443, 443}, {6000, 6010}}),
            "80-81, 443, 6000-6010");
  EXPECT_EQ(policy::format_port_ranges({}), "");
}

TEST(PortRanges, Contain) {
  Ranges outer{{1, 100}, {443, 443}};
  EXPECT_TRUE(policy::port_ranges_contain(outer, {{5, 10}, {20, 20}}));
  EXPECT_TRUE(policy::port_ranges_contain(outer, {{443, 443}}));
  EXPECT_TRUE(policy::port_ranges_contain(outer, {}));
  EXPECT_FALSE(policy::port_ranges_contain(outer, {{100, 101}}));
  EXPECT_FALSE(policy::port_ranges_contain(outer, {{5, 10}, {442, 443}}));
  EXPECT_FALSE(policy::port_ranges_contain({}, {{1, 1}}));
}

// ---- hosts -------------------------------------------------------------------------------------

TEST(HostPattern, Valid) {
  for (const char* host : {"api.openai.com", "*.example.com", "a-b.example.com", "localhost",
                           "x_y.example.com", "xn--bcher-kva.example", "a1.b2.c3", "*.co.uk"}) {
    std::string why;
    EXPECT_TRUE(policy::valid_host_pattern(host, why)) << host << ": " << why;
  }
}

TEST(HostPattern, Invalid) {
  struct Case {
    std::string host;
    const char* fragment;
  };
  const std::string label64(64, 'a');
  std::string long_name;
  while (long_name.size() < 254)
    long_name += "abcdefghi.";
  long_name += "com";
  for (const Case& c : {
           Case{"", "a DNS name of 1 to 253 characters"},
           Case{"API.example.com", "a lower-case DNS name"},
           Case{"10.0.0.1", "write addresses as \"cidr\""},
           Case{"127.1", "write addresses as \"cidr\""},
           Case{"0x7f000001", "write addresses as \"cidr\""},
           Case{"2130706433", "write addresses as \"cidr\""},
           Case{"::1", "write addresses as \"cidr\""},
           Case{"[2001:db8::1]", "write addresses as \"cidr\""},
           Case{"*.10.0.0.1", "write addresses as \"cidr\""},
           Case{"*.com", "not over a top-level domain"},
           Case{"a.*.com", "'*' only as a whole first label"},
           Case{"*", "'*' only as a whole first label"},
           Case{"**.example.com", "'*' only as a whole first label"},
           Case{"*.*.example.com", "'*' only as a whole first label"},
           Case{"*example.com", "'*' only as a whole first label"},
           Case{"example.com.", "no trailing dot"},
           Case{"a..b.com", "no empty label"},
           Case{".example.com", "no empty label"},
           Case{"-a.example.com", "do not start or end with '-'"},
           Case{"a-.example.com", "do not start or end with '-'"},
           Case{label64 + ".com", "labels have 1 to 63 characters"},
           Case{long_name, "a DNS name of 1 to 253 characters"},
           Case{"a b.com", "a DNS name of letters, digits, '-' and '.'"},
           Case{"exa\xc3\xa9mple.com", "a DNS name of letters, digits"},
       }) {
    std::string why;
    EXPECT_FALSE(policy::valid_host_pattern(c.host, why)) << c.host;
    EXPECT_NE(why.find(c.fragment), std::string::npos) << c.host << ": " << why;
  }
  std::string why;
  EXPECT_TRUE(policy::valid_host_pattern(std::string(63, 'a') + ".com", why)) << why;
}

TEST(HostPattern, Matches) {
  EXPECT_TRUE(policy::host_pattern_matches("api.openai.com", "api.openai.com"));
  EXPECT_TRUE(policy::host_pattern_matches("api.openai.com", "API.OpenAI.com"));
  EXPECT_TRUE(policy::host_pattern_matches("api.openai.com", "api.openai.com."));
  EXPECT_FALSE(policy::host_pattern_matches("api.openai.com", "openai.com"));
  EXPECT_FALSE(policy::host_pattern_matches("api.openai.com", "xapi.openai.com"));
  EXPECT_FALSE(policy::host_pattern_matches("api.openai.com", "api.openai.com.evil.net"));

  EXPECT_TRUE(policy::host_pattern_matches("*.example.com", "a.example.com"));
  EXPECT_TRUE(policy::host_pattern_matches("*.example.com", "a.b.example.com"));
  EXPECT_TRUE(policy::host_pattern_matches("*.example.com", "A.Example.COM."));
  EXPECT_FALSE(policy::host_pattern_matches("*.example.com", "example.com"));
  EXPECT_FALSE(policy::host_pattern_matches("*.example.com", "example.com."));
  EXPECT_FALSE(policy::host_pattern_matches("*.example.com", ".example.com"));
  EXPECT_FALSE(policy::host_pattern_matches("*.example.com", "badexample.com"));
  EXPECT_FALSE(policy::host_pattern_matches("*.example.com", "a.example.com.evil.net"));
  EXPECT_FALSE(policy::host_pattern_matches("*.example.com", "a.example.org"));
}

// ---- paths -------------------------------------------------------------------------------------

TEST(AbsolutePath, Accepted) {
  for (const char* p :
       {"/", "/usr", "/usr/lib/x86_64-linux-gnu", "/a b/c", "/.hidden", "/a/...", "/caf\xc3\xa9"}) {
    EXPECT_EQ(policy::check_absolute_path(p), "") << p;
  }
  EXPECT_EQ(policy::check_absolute_path("/" + std::string(255, 'a')), "");
}

TEST(AbsolutePath, Rejected) {
  struct Case {
    std::string path;
    std::string error;
  };
  for (const Case& c : {
           Case{"", "an absolute path, got an empty string"},
           Case{"usr/lib", "an absolute path (starting with \"/\")"},
           Case{"./usr", "an absolute path (starting with \"/\")"},
           Case{"~/x", "an absolute path (starting with \"/\")"},
           Case{"/usr/", "a path without a trailing \"/\" (did you mean \"/usr\"?)"},
           Case{"/usr//", "a path without a trailing \"/\" (did you mean \"/usr\"?)"},
           Case{"//", "a path without a trailing \"/\" (did you mean \"/\"?)"},
           Case{"/a//b", "a path without empty segments (\"//\")"},
           Case{"//a", "a path without empty segments (\"//\")"},
           Case{"/a/./b", "a path without \".\" segments"},
           Case{"/a/.", "a path without \".\" segments"},
           Case{"/a/../b", "a path without \"..\" segments"},
           Case{"/..", "a path without \"..\" segments"},
           Case{"/a\nb", "a path without control characters"},
           Case{"/a\tb", "a path without control characters"},
           Case{std::string("/a\0b", 3), "a path without control characters"},
           Case{"/a\x7f", "a path without control characters"},
           Case{"/" + std::string(256, 'a'), "a path whose segments have at most 255 bytes"},
           Case{"/" + std::string(4095, 'a'), "a path of at most 4095 bytes"},
       }) {
    EXPECT_EQ(policy::check_absolute_path(c.path), c.error) << c.path;
  }
}

TEST(AbsolutePath, TemplatePlaceholderAtStart) {
  EXPECT_NE(policy::check_absolute_path("${workdir}/out"), "");
  EXPECT_EQ(policy::check_absolute_path("${workdir}/out", true), "");
  EXPECT_EQ(policy::check_absolute_path("${workdir}", true), "");
  EXPECT_EQ(policy::check_absolute_path("/data/${id}", false), "");
  // The placeholder exemption does not excuse the other rules.
  EXPECT_NE(policy::check_absolute_path("${workdir}/../x", true), "");
  EXPECT_NE(policy::check_absolute_path("${workdir}/", true), "");
  EXPECT_NE(policy::check_absolute_path("workdir", true), "");
}

TEST(PathIsUnder, Prefixes) {
  EXPECT_TRUE(policy::path_is_under("/usr/lib", "/usr"));
  EXPECT_TRUE(policy::path_is_under("/usr", "/usr"));
  EXPECT_TRUE(policy::path_is_under("/usr/lib/x/y", "/usr/lib"));
  EXPECT_FALSE(policy::path_is_under("/usrx", "/usr"));
  EXPECT_FALSE(policy::path_is_under("/usr-local/bin", "/usr"));
  EXPECT_FALSE(policy::path_is_under("/us", "/usr"));
  EXPECT_FALSE(policy::path_is_under("/usr", "/usr/lib"));
  EXPECT_TRUE(policy::path_is_under("/", "/"));
  EXPECT_TRUE(policy::path_is_under("/anything/at/all", "/"));
  EXPECT_FALSE(policy::path_is_under("/", "/usr"));
}

TEST(PathHelpers, SegmentsAndParent) {
  EXPECT_EQ(policy::path_segments("/a/b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(policy::path_segments("/"), std::vector<std::string>{});
  EXPECT_EQ(policy::parent_path("/a/b"), "/a");
  EXPECT_EQ(policy::parent_path("/a"), "/");
  EXPECT_EQ(policy::parent_path("/"), "/");
}

}  // namespace
