// The loopback interface of a new, otherwise empty network namespace (network mode "none").
#pragma once

namespace launcher {

// Brings "lo" up in the calling process's network namespace; throws LaunchError on failure.
void bring_up_loopback();

}  // namespace launcher
