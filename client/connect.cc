// Client::connect: the socket's connect, the HELLO exchange, and mapping
// the arena and the lease-slot page the daemon passes with its reply.
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client/connection.h"
#include "common/huge_pages.h"
#include "client/replies.h"
#include "genomed/client.h"
#include "ipc/protocol.h"

namespace genomed {

using client_detail::Connection;
using client_detail::deadline_after;
using client_detail::duration_text;
using client_detail::is_daemon_error;
using client_detail::Millis;

Result<Client> Client::connect(const std::string& socket_path, const std::string& client_name) {
  ClientOptions options;
  options.client_name = client_name;
  return connect(socket_path, options);
}

namespace {

// Why connect() to `path` failed with `error`, in words an operator can act
// on. A path naming something other than a socket fails with ECONNREFUSED,
// as a socket file left by a stopped daemon does, so the node is looked at:
// "is the daemon running?" would send them after the wrong cause.
std::string connect_error_text(const std::string& path, int error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    const char* kind = S_ISREG(st.st_mode)    ? "a regular file"
                       : S_ISDIR(st.st_mode)  ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "a file of another kind";
    return "'" + path + "' is " + kind +
           ", not a socket: give the path genomed listens on (its --socket)";
  }
  if (error == ENOENT)
    return std::string(std::strerror(error)) +
           " (is the daemon running? it creates its socket when it starts)";
  return std::string(std::strerror(error)) + " (is the daemon running?)";
}

}  // namespace

Result<Client> Client::connect(const std::string& socket_path, const ClientOptions& options) {
  const auto deadline = deadline_after(options.connect_timeout);
  const std::string where = "connect to genomed at '" + socket_path + "'";
  const auto timed_out = [&](const std::string& what) {
    return Status(Errc::timeout, where + ": " + what + " within " +
                                     duration_text(options.connect_timeout) +
                                     " (connect_timeout; is the daemon stopped or overloaded?)");
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Status(Errc::bad_request, "socket path '" + socket_path + "' is too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status(Errc::not_connected, std::string("socket: ") + std::strerror(errno));
  // The Connection (its transport) owns fd from here on, and belongs to
  // this process (the fork guard registers its handler now, before any fork
  // could copy it).
  auto conn = std::make_shared<Connection>(
      options, std::make_unique<client_detail::Transport>(fd, client_detail::ForkGuard(),
                                                         options.request_timeout,
                                                         options.interrupted));
  // A Unix stream connect() waits while the daemon's listen backlog is full
  // (a daemon that is stopped, or too busy to accept); Linux bounds that wait
  // by SO_SNDTIMEO and then fails with EAGAIN. Reset to "no timeout" after:
  // writes have their own deadlines.
  const auto set_send_timeout = [&](Millis t) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(t.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  };
  for (;;) {
    if (deadline) {
      const auto left = std::chrono::ceil<Millis>(*deadline - ipc::Clock::now());
      if (left <= Millis(0)) return timed_out("the daemon accepted no connection");
      set_send_timeout(left);
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN && deadline) return timed_out("the daemon accepted no connection");
    const int error = errno;
    return Status(Errc::not_connected,
                  "cannot " + where + ": " + connect_error_text(socket_path, error));
  }
  if (deadline) set_send_timeout(Millis(0));

  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  hello.client = options.client_name;
  hello.lease_slots = options.lease_slots;
  client_detail::Transport& transport = *conn->transport;
  if (Status s = transport.send_first(hello, deadline); !s.ok()) {
    if (s.code() == Errc::timeout) return timed_out("the daemon took no HELLO");
    // A daemon that refuses the connection (at its connection limit) says
    // why and closes it, maybe before HELLO arrives: its reply is waiting.
    auto why = transport.receive_first(deadline, /*max_fds=*/0);
    if (why) {
      auto refused = ipc::decode_hello_reply(why->body);
      if (!refused && is_daemon_error(why->body, refused.status())) return refused.status();
    }
    return Status(s.code(), where + ": HELLO: " + s.message());
  }
  auto frame = transport.receive_first(deadline, /*max_fds=*/2);
  if (!frame) {
    if (frame.code() == Errc::timeout) return timed_out("no HELLO reply");
    if (frame.code() == Errc::frame_too_large) {
      return Status(Errc::protocol_error, where + ": HELLO reply: " + frame.status().message());
    }
    return Status(frame.code(), where + ": HELLO: " + frame.status().message());
  }
  const int arena_fd = frame->fds.empty() ? -1 : frame->fds[0];
  const int slots_fd = frame->fds.size() < 2 ? -1 : frame->fds[1];
  const auto close_arena_fd = [&] {
    if (arena_fd >= 0) ::close(arena_fd);
    if (slots_fd >= 0) ::close(slots_fd);
  };
  auto reply = client_detail::checked(ipc::decode_hello_reply(frame->body), frame->body, where + ": HELLO reply");
  if (!reply) {
    close_arena_fd();
    return reply.status();
  }
  if (arena_fd < 0) {
    return Status(Errc::protocol_error,
                  where + ": the daemon's HELLO reply carried no arena descriptor");
  }
  // Mapping past the end of the segment would fault (SIGBUS) on access.
  struct stat st {};
  if (::fstat(arena_fd, &st) != 0 || st.st_size < 0 ||
      static_cast<std::uint64_t>(st.st_size) < reply->arena_bytes) {
    close_arena_fd();
    return Status(Errc::protocol_error,
                  where + ": the daemon's HELLO reply announces an arena of " +
                      std::to_string(reply->arena_bytes) + " bytes; its descriptor holds " +
                      std::to_string(st.st_size));
  }
  if ((reply->lease_slots > 0) != (slots_fd >= 0) || (slots_fd >= 0 && !options.lease_slots)) {
    close_arena_fd();
    return Status(Errc::protocol_error,
                  where + ": the daemon's HELLO reply announces " +
                      std::to_string(reply->lease_slots) + " lease slots with " +
                      (slots_fd >= 0 ? "a" : "no") + " page descriptor" +
                      (options.lease_slots ? "" : ", not asked for"));
  }
  if (slots_fd >= 0) {
    auto mapped = client_detail::SlotCache::map(slots_fd, reply->lease_slots);
    if (!mapped) {
      close_arena_fd();
      return Status(mapped.code(), where + ": " + mapped.status().message());
    }
    conn->slots = std::move(mapped).value();
  }
  // 2 MiB-aligned and advised for huge pages where the host allows them
  // (common/huge_pages.h): a first touch of the tensors faults per 2 MiB.
  void* p = map_shared_aligned(arena_fd, reply->arena_bytes, PROT_READ);
  const int map_errno = errno;
  close_arena_fd();  // the mappings keep the arena and the slot page alive
  if (p == MAP_FAILED) {
    return Status(Errc::environment,
                  std::string("cannot map the arena read-only: ") + std::strerror(map_errno));
  }
  transport.serve();
  conn->arena = static_cast<const std::byte*>(p);
  conn->arena_bytes = reply->arena_bytes;
  conn->daemon_pid = reply->pid;
  conn->server = reply->server;
  return Client(std::move(conn));
}

}  // namespace genomed
