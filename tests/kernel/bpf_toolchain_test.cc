// The BPF pipeline end to end: vmlinux.h, clang -target bpf, skeleton, load, attach, count.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf/probe_loader.h"

TEST(BpfToolchain, ProbeLoadsAttachesAndCounts) {
  bpf::GetppidProbe probe(getpid());
  for (int i = 0; i < 100; ++i)
    syscall(SYS_getppid);
  EXPECT_EQ(probe.count(), 100u);
}
