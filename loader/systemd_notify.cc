#include "loader/systemd_notify.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>

namespace genomed::loader {

void notify_ready(const std::string& status) {
  // unset_environment=0: workers never see NOTIFY_SOCKET anyway (they get a
  // fixed argv and inherit it, but never call sd_notify).
  (void)sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void notify_stopping(const std::string& status) {
  (void)sd_notify(0, ("STOPPING=1\nSTATUS=" + status).c_str());
}

Result<int> activated_socket() {
  // unset_environment=1: LISTEN_* must not leak into the workers.
  const int n = sd_listen_fds(1);
  if (n < 0) return Status(Errc::environment, std::string("sd_listen_fds: ") + std::strerror(-n));
  if (n == 0) return -1;
  if (n > 1) {
    return Status(Errc::environment,
                  "socket activation passed " + std::to_string(n) +
                      " descriptors; genomed takes exactly one (one ListenStream= in the .socket "
                      "unit)");
  }
  const int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
    return Status(Errc::environment,
                  "socket activation passed a descriptor that is not a listening Unix stream "
                  "socket (ListenStream= must name a path)");
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

}  // namespace genomed::loader
