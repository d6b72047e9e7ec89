// The supervisor's end of seccomp user notification: receive a blocked call, say which one it
// is, answer it with an errno, or kill the calling process first (pidfd, race-checked).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "launcher/base/fd.h"

struct seccomp_notif;
struct seccomp_notif_resp;

namespace launcher {

struct SeccompNotice {
  uint64_t id = 0;
  pid_t pid = 0;  // in the supervisor's pid namespace
  uint32_t arch = 0;
  int nr = 0;
  std::string syscall;       // name ("ptrace"), or "nr N" when unknown
  std::string abi;           // "x86_64", "x32", "i386", ...
  bool foreign_abi = false;  // not the native ABI: always killed
  std::array<uint64_t, 6> args{};
};

class SeccompListener {
 public:
  explicit SeccompListener(UniqueFd fd);
  ~SeccompListener();
  SeccompListener(const SeccompListener&) = delete;
  SeccompListener& operator=(const SeccompListener&) = delete;

  int fd() const { return fd_.get(); }
  // One pending notification, or nullopt (none pending, or its caller is already gone).
  std::optional<SeccompNotice> receive();
  // Answers the call with -err; it never runs.
  void fail(const SeccompNotice& notice, int err);
  // Lets the call run as the caller made it (SECCOMP_USER_NOTIF_FLAG_CONTINUE). Only for calls
  // decided without reading the caller's memory: the kernel re-reads nothing on our behalf.
  void allow(const SeccompNotice& notice);
  // SIGKILLs the calling process, unless the notification is no longer valid (the pid may have
  // been reused). Returns true when a signal was sent.
  bool kill_caller(const SeccompNotice& notice);

 private:
  UniqueFd fd_;
  seccomp_notif* req_ = nullptr;
  seccomp_notif_resp* resp_ = nullptr;
};

}  // namespace launcher
