// event_encode_bench N FILE: the supervisor's work for N access-log records, without the kernel:
// raw open records (as the eBPF ring buffer holds them, distinct paths) decoded and written as
// JSONL events to FILE (appended, batches of 256 records a write as a drain of the ring buffer
// gives them). Prints two figures, records per second: the direct encoding the supervisor uses
// (append_open_fields, EventStream::emit_members) and the document path (kernel_events, a
// nlohmann document per event, EventStream::emit) for comparison.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bpf/enclosure_abi.h"
#include "bpf/event_decoder.h"
#include "launcher/events/event.h"
#include "launcher/events/kernel_events.h"
#include "policy/plan.h"

namespace {

constexpr size_t kBatch = 256;

double now_s() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// N open records of distinct files created in /tmp, as the kernel writes them.
std::vector<enc_open_event> raw_records(size_t n) {
  std::vector<enc_open_event> out(n);
  for (size_t i = 0; i < n; ++i) {
    enc_open_event& e = out[i];
    std::memset(&e, 0, sizeof e);
    e.h.type = ENC_EV_OPEN;
    e.h.size = sizeof e;
    e.h.pid = 4242;
    e.h.kseq = i + 1;
    e.result = 3;
    e.dirfd = -100;
    e.flags = 01 | 0100 | 0200 | 02000000;  // O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC
    e.dev = 42;
    e.ino = 1000 + i;
    e.counted = 1;
    std::snprintf(e.path, sizeof e.path, "/tmp/f%zu", i);
  }
  return out;
}

launcher::EventStream open_stream(const char* file) {
  launcher::EventStream stream(
      {"0123456789abcdef0123456789abcdef", "bench", std::nullopt, "sha256:00"});
  stream.set_rate_limit({0, 1});
  std::string error;
  std::unique_ptr<launcher::EventSink> sink = launcher::open_fd_sink(file, error);
  if (!sink) {
    std::fprintf(stderr, "%s\n", error.c_str());
    std::exit(1);
  }
  stream.add_sink(std::move(sink));
  return stream;
}

// Records per second through decode, the direct encoding and the file.
double direct_rate(const std::vector<enc_open_event>& raw, const char* file) {
  launcher::EventStream stream = open_stream(file);
  static const std::string kOpen = "open";
  std::string fields;
  std::string error;
  double start = now_s();
  for (size_t i = 0; i < raw.size(); i += kBatch) {
    launcher::EventStream::WriteBatch batch(stream);
    for (size_t k = i; k < raw.size() && k < i + kBatch; ++k) {
      std::optional<bpf::DecodedRecord> r = bpf::decode_record(&raw[k], sizeof raw[k], error);
      fields.clear();
      launcher::append_open_fields(fields, std::get<bpf::OpenRecord>(r->body), r->kseq);
      stream.emit_members(kOpen, r->pid, fields);
    }
  }
  return static_cast<double>(raw.size()) / (now_s() - start);
}

// The same through kernel_events() and a document per event.
double document_rate(const std::vector<enc_open_event>& raw, const char* file) {
  launcher::EventStream stream = open_stream(file);
  policy::EnforcementPlan plan;
  std::string error;
  double start = now_s();
  for (size_t i = 0; i < raw.size(); i += kBatch) {
    launcher::EventStream::WriteBatch batch(stream);
    for (size_t k = i; k < raw.size() && k < i + kBatch; ++k) {
      std::optional<bpf::DecodedRecord> r = bpf::decode_record(&raw[k], sizeof raw[k], error);
      for (launcher::KernelEvent& e : launcher::kernel_events(*r, plan))
        stream.emit(e.type, e.pid, e.fields);
    }
  }
  return static_cast<double>(raw.size()) / (now_s() - start);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s N FILE\n", argv[0]);
    return 2;
  }
  size_t n = std::strtoull(argv[1], nullptr, 10);
  std::vector<enc_open_event> raw = raw_records(n);
  double direct = direct_rate(raw, argv[2]);
  double document = document_rate(raw, argv[2]);
  std::printf("%.0f %.0f\n", direct, document);
  return 0;
}
