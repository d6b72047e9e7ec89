// The supervisor's direct encoding of access-log records (append_open_fields, emit_members) must
// give the bytes of the document path (kernel_events, set_bytes, encode_event) for every record.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "bpf/event_decoder.h"
#include "launcher/events/event.h"
#include "launcher/events/kernel_events.h"

namespace {

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

// Random bytes: mostly path-like ASCII, with quotes, control bytes, UTF-8 of every length and
// invalid sequences mixed in.
std::string random_bytes(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "/",    "usr",  "a b",          "\"",       "\\",           "\n",
      "\t",   "\x01", "\x7f",         "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
      "\xff", "\xc3", "\xed\xa0\x80", "\x1b[31m", "\xe2\x80\xa8", "\x08\x0c\x0d"};
  std::string out;
  int n = static_cast<int>(rng() % 12);
  for (int i = 0; i < n; ++i)
    out += pieces[rng() % pieces.size()];
  return out;
}

bpf::OpenRecord random_open(std::mt19937& rng) {
  bpf::OpenRecord o;
  o.result = rng() % 3 == 0 ? -static_cast<int64_t>(1 + rng() % 140) : rng() % 1000;
  o.dirfd = rng() % 2 ? -100 : static_cast<int32_t>(rng() % 64) - 5;
  o.flags = static_cast<uint32_t>(rng()) & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC |
                                            O_DIRECTORY | O_NOFOLLOW | O_PATH | O_APPEND);
  o.path_unreadable = rng() % 7 == 0;
  o.path = random_bytes(rng);
  if (rng() % 2) {
    o.dev = rng();
    o.ino = (static_cast<uint64_t>(rng()) << 32) | rng();
  }
  o.counted = rng() % 2;
  return o;
}

class LineSink : public launcher::EventSink {
 public:
  explicit LineSink(std::vector<std::string>& lines) : lines_(lines) {}
  bool write(const std::string& line) override {
    lines_.push_back(line);
    return true;
  }
  std::string describe() const override { return "memory"; }

 private:
  std::vector<std::string>& lines_;
};

// The line without its "ts" value, which differs between two emits.
std::string without_ts(const std::string& line) {
  size_t end = line.find("\",\"run\"");
  return end == std::string::npos ? line : line.substr(end);
}

TEST(EventEncoding, JsonStringsMatchTheSerializer) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    bool exact = true;
    std::string text = launcher::to_valid_utf8(random_bytes(rng), exact);
    std::string direct;
    launcher::append_json_string(direct, text);
    ASSERT_EQ(direct, dump(nlohmann::json(text)));
  }
}

TEST(EventEncoding, OpenFieldsMatchTheKernelEventsDocument) {
  std::mt19937 rng(11);
  policy::EnforcementPlan plan;
  for (int i = 0; i < 20000; ++i) {
    bpf::DecodedRecord r;
    r.kseq = rng();
    r.pid = 1 + rng() % 100000;
    r.body = random_open(rng);
    std::vector<launcher::KernelEvent> events = launcher::kernel_events(r, plan);
    ASSERT_EQ(events.size(), 1u);
    std::string members;
    launcher::append_open_fields(members, std::get<bpf::OpenRecord>(r.body), r.kseq);
    ASSERT_EQ("{" + members + "}", dump(events[0].fields));
  }
}

TEST(EventEncoding, EmitMembersWritesTheLineOfEmit) {
  std::mt19937 rng(13);
  launcher::RunIdentity id{"0123456789abcdef0123456789abcdef", "m\xc3\xa9 \"x\"", 4, "sha256:00"};
  std::vector<std::string> by_document, direct;
  launcher::EventStream a(id), b(id);
  a.set_rate_limit({0, 1});
  b.set_rate_limit({0, 1});
  a.add_sink(std::make_unique<LineSink>(by_document));
  b.add_sink(std::make_unique<LineSink>(direct));
  policy::EnforcementPlan plan;
  for (int i = 0; i < 2000; ++i) {
    bpf::DecodedRecord r;
    r.kseq = i;
    r.pid = 7;
    r.body = random_open(rng);
    launcher::KernelEvent e = launcher::kernel_events(r, plan)[0];
    a.emit(e.type, e.pid, e.fields);
    std::string members;
    launcher::append_open_fields(members, std::get<bpf::OpenRecord>(r.body), r.kseq);
    launcher::EventStream::WriteBatch batch(b);
    b.emit_members("open", 7, members);
  }
  ASSERT_EQ(by_document.size(), direct.size());
  for (size_t i = 0; i < direct.size(); ++i)
    ASSERT_EQ(without_ts(direct[i]), without_ts(by_document[i]));
  EXPECT_EQ(a.counts(), b.counts());
  EXPECT_EQ(b.next_seq(), 2000u);
}

}  // namespace
