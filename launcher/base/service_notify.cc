#include "launcher/base/service_notify.h"

#include <dlfcn.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "launcher/base/error.h"

namespace launcher {
namespace {

using SdNotify = decltype(&sd_notify);

constexpr const char* kLibrary = "libsystemd.so.0";

// sd_notify from the library, loaded once; the handle stays for the process's lifetime (the
// function is called again at shutdown).
SdNotify load_sd_notify() {
  static SdNotify loaded = [] {
    void* library = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      const char* why = ::dlerror();
      throw LaunchError(std::string("notifying the service manager: cannot load ") + kLibrary +
                        ": " + (why ? why : "unknown error"));
    }
    auto notify = reinterpret_cast<SdNotify>(::dlsym(library, "sd_notify"));
    if (!notify) {
      throw LaunchError(std::string("notifying the service manager: ") + kLibrary +
                        " has no sd_notify");
    }
    return notify;
  }();
  return loaded;
}

}  // namespace

void notify_service_manager(const std::string& state) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (!socket || !*socket) return;
  int sent = load_sd_notify()(0, state.c_str());
  if (sent < 0) {
    throw LaunchError("notifying the service manager at " + std::string(socket) + ": " +
                      std::strerror(-sent));
  }
}

}  // namespace launcher
