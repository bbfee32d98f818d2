// genomed under systemd (dist/systemd/): Type=notify readiness and stop
// notices through libsystemd's sd_notify, and socket activation
// (LISTEN_FDS / LISTEN_PID, sd_listen_fds). Without NOTIFY_SOCKET or
// LISTEN_FDS in the environment every call here does nothing, so the same
// binary runs anywhere. libsystemd is included in this file's .cc only.
#pragma once

#include <string>

#include "common/status.h"

namespace genomed::loader {

// READY=1 with a STATUS= line: the socket accepts clients.
void notify_ready(const std::string& status);
// STOPPING=1: the stop (and drain) began.
void notify_stopping(const std::string& status);

// The listening Unix stream socket systemd passed (made close-on-exec, so
// workers do not inherit it), or -1 when not socket-activated. An error when
// more than one descriptor, or one that is not a listening Unix stream
// socket, was passed.
Result<int> activated_socket();

}  // namespace genomed::loader
