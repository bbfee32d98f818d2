// Access control with the real daemon: the socket file's mode and group, and
// the peer's credentials checked at HELLO (--allow-uid / --allow-gid). The
// client runs as the unprivileged user `nobody` (65534): genomectl, forked
// and setuid by the test, which therefore runs as root.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/raw_socket.h"

namespace genomed::testing {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

#define REQUIRE_ROOT()  \
  if (::geteuid() != 0) \
  GTEST_SKIP() << "runs a client as another user: needs root (CI runs as root)"

// The daemon's temporary directory is 0700 (mkdtemp): another user could not
// even reach the socket in it, whatever the socket's own mode.
void open_directory_to_others(const Daemon& d) { ASSERT_EQ(::chmod(d.dir().c_str(), 0755), 0); }

CommandResult health_as(const Daemon& d, std::optional<RunAs> as, pid_t* pid = nullptr) {
  return run_command({binary("genomectl"), "--socket", d.socket_path(), "health"}, as, pid);
}

struct stat socket_stat(const Daemon& d) {
  struct stat st {};
  EXPECT_EQ(::stat(d.socket_path().c_str(), &st), 0);
  return st;
}

TEST(AccessControl, SocketIsOwnerOnlyByDefaultSoAnotherUserCannotConnect) {
  REQUIRE_ROOT();
  Daemon d;
  open_directory_to_others(d);
  EXPECT_EQ(socket_stat(d).st_mode & 07777, 0600u);
  const auto nobody = health_as(d, RunAs{kNobody, kNogroup});
  EXPECT_EQ(nobody.exit_code, 1) << nobody.err;
  EXPECT_NE(nobody.err.find("not_connected"), std::string::npos) << nobody.err;
  EXPECT_NE(nobody.err.find("Permission denied"), std::string::npos) << nobody.err;
  const auto owner = health_as(d, std::nullopt);
  EXPECT_EQ(owner.exit_code, 0) << owner.err;
}

TEST(AccessControl, SocketModeAndGroupLetTheGroupConnect) {
  REQUIRE_ROOT();
  Daemon d({.extra_args = {"--socket-mode", "0660", "--socket-group", "nogroup"}});
  open_directory_to_others(d);
  const struct stat st = socket_stat(d);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, kNogroup);
  const auto in_group = health_as(d, RunAs{kNobody, kNogroup});
  EXPECT_EQ(in_group.exit_code, 0) << in_group.err << d.log();
  EXPECT_EQ(in_group.out, "healthy\n");
  // Another user outside the group is refused by the kernel at connect.
  const auto outsider = health_as(d, RunAs{kNobody, 4242});
  EXPECT_EQ(outsider.exit_code, 1) << outsider.err;
  EXPECT_NE(outsider.err.find("not_connected"), std::string::npos) << outsider.err;
}

TEST(AccessControl, UnlistedUserGetsPermissionDeniedAndALogLineNamingUidAndPid) {
  REQUIRE_ROOT();
  Daemon d({.extra_args = {"--socket-mode", "0666", "--allow-uid", "12345"}});
  open_directory_to_others(d);
  pid_t client_pid = -1;
  const auto refused = health_as(d, RunAs{kNobody, kNogroup}, &client_pid);
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("error: permission_denied: uid 65534"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("--allow-uid"), std::string::npos) << refused.err;
  EXPECT_TRUE(eventually([&] {
    return d.log().find("permission denied to uid 65534 gid 65534 pid " +
                        std::to_string(client_pid)) != std::string::npos;
  })) << d.log();
  // The daemon's own user is always served (genomectl as the service user).
  const auto owner = health_as(d, std::nullopt);
  EXPECT_EQ(owner.exit_code, 0) << owner.err;
  EXPECT_EQ(d.stat("permission_denied"), 1u);
}

TEST(AccessControl, ListedUidOrGroupIsServed) {
  REQUIRE_ROOT();
  for (const std::vector<std::string>& allow :
       {std::vector<std::string>{"--allow-uid", "1,nobody"},
        std::vector<std::string>{"--allow-gid", "nogroup"},
        // Matched through a supplementary group is not possible without
        // one: the primary gid given here is the listed one.
        std::vector<std::string>{"--allow-uid", "12345", "--allow-gid", "65534"}}) {
    std::vector<std::string> args = {"--socket-mode", "0666"};
    args.insert(args.end(), allow.begin(), allow.end());
    Daemon d({.extra_args = args});
    open_directory_to_others(d);
    const auto nobody = health_as(d, RunAs{kNobody, kNogroup});
    EXPECT_EQ(nobody.exit_code, 0) << allow[1] << ": " << nobody.err << d.log();
    EXPECT_EQ(d.stat("permission_denied"), 0u);
  }
}

TEST(AccessControl, RefusalLogLinesAreRateLimitedAndCounted) {
  REQUIRE_ROOT();
  Daemon d({.extra_args = {"--socket-mode", "0666", "--allow-uid", "12345"}});
  open_directory_to_others(d);
  constexpr int kAttempts = 14;  // the shared allowance is 10 lines, then one per 10 s
  for (int i = 0; i < kAttempts; ++i) {
    const auto r = health_as(d, RunAs{kNobody, kNogroup});
    ASSERT_EQ(r.exit_code, 1) << r.err;
    ASSERT_NE(r.err.find("permission_denied"), std::string::npos) << r.err;
  }
  EXPECT_EQ(d.stat("permission_denied"), std::uint64_t{kAttempts});
  const std::string log = d.log();
  std::size_t lines = 0;
  for (auto at = log.find("permission denied to uid"); at != std::string::npos;
       at = log.find("permission denied to uid", at + 1)) {
    ++lines;
  }
  EXPECT_LT(lines, std::size_t{kAttempts});
  EXPECT_EQ(lines + d.stat("log_lines_suppressed"), std::size_t{kAttempts});
}

TEST(AccessControl, AnUnlistedUsersBadHelloIsRefusedAsPermissionDeniedWithinTheLogAllowance) {
  // An unlisted user who sends a HELLO of another protocol version must
  // meet the access check first: before, it got unsupported_version and an
  // unlimited warning per connection (a log flood from a user who may not
  // use the daemon at all).
  REQUIRE_ROOT();
  Daemon d({.extra_args = {"--socket-mode", "0666", "--allow-uid", "12345"}});
  open_directory_to_others(d);
  constexpr int kAttempts = 14;  // the shared allowance is 10 lines, then one per 10 s
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(kNogroup) != 0 || ::setuid(kNobody) != 0) ::_exit(2);
    for (int i = 0; i < kAttempts; ++i) {
      RawSocket raw(d.socket_path());
      ipc::Request hello;
      hello.op = ipc::Op::hello;
      hello.version = ipc::kProtocolVersion + 1000;
      hello.client = "raw";
      // The refusal may come (and the socket close) before the HELLO is
      // written: as the clients do, read the reply either way.
      (void)ipc::write_frame(raw.fd(), ipc::encode_request(hello));
      auto frame = raw.reply();
      if (!frame) ::_exit(4);
      if (ipc::decode_hello_reply(frame->body).code() != Errc::permission_denied) ::_exit(5);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "4: no reply, 5: not permission_denied\n"
                                    << d.log();
  EXPECT_EQ(d.stat("permission_denied"), std::uint64_t{kAttempts});
  const std::string log = d.log();
  EXPECT_EQ(log.find("unsupported_version"), std::string::npos) << log;
  std::size_t lines = 0;
  for (auto at = log.find("permission denied to uid"); at != std::string::npos;
       at = log.find("permission denied to uid", at + 1)) {
    ++lines;
  }
  EXPECT_LT(lines, std::size_t{kAttempts});
}

// A connected socket to `path`, or -1. No gtest assertion: forked children use it.
int connect_raw(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    return fd;
  }
  if (fd >= 0) ::close(fd);
  return -1;
}

// Connects to `path` and says HELLO; the descriptor, or -1 if the daemon
// refused (it answered with an error, then in `refused` if given) or could
// not be reached.
int hello_raw(const std::string& path, Status* refused = nullptr) {
  const int fd = connect_raw(path);
  if (fd < 0) return -1;
  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  hello.client = "hog";
  (void)ipc::write_frame(fd, ipc::encode_request(hello));
  auto reply = ipc::read_frame(fd, ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/2);
  if (reply) {
    for (int passed : reply->fds) ::close(passed);
  }
  if (reply && refused) *refused = ipc::decode_hello_reply(reply->body).status();
  if (!reply || !ipc::decode_hello_reply(reply->body).ok()) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A process of user nobody that opens connections with `open_all` (which
// returns how many it holds, at most 127, or exits) and holds them, idle,
// until finish().
class NobodysConnections {
 public:
  explicit NobodysConnections(const std::function<int()>& open_all) {
    int ready[2], done[2];
    if (::pipe(ready) != 0 || ::pipe(done) != 0) return;
    child_ = ::fork();
    if (child_ == 0) {
      ::close(ready[0]);
      ::close(done[1]);  // or its read below never sees the parent's close
      if (::setgid(kNogroup) != 0 || ::setuid(kNobody) != 0) ::_exit(2);
      const char held = static_cast<char>(open_all());
      if (::write(ready[1], &held, 1) != 1) ::_exit(4);
      char byte;
      (void)::read(done[0], &byte, 1);  // holds them until the parent is done
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(done[0]);
    ready_ = ready[0];
    done_ = done[1];
  }
  ~NobodysConnections() { finish(); }

  // How many it holds, once it holds them; -1 if it failed.
  int held() {
    char n = 0;
    return ::read(ready_, &n, 1) == 1 ? n : -1;
  }
  // Lets it close them and exit; its exit status as waitpid reports it.
  int finish() {
    if (child_ <= 0) return -1;
    ::close(done_);
    ::close(ready_);
    int status = 0;
    ::waitpid(child_, &status, 0);
    child_ = -1;
    return status;
  }

 private:
  pid_t child_ = -1;
  int ready_ = -1;
  int done_ = -1;
};

TEST(AccessControl, AnUnlistedUserCannotTakeTheConnectionSlotsOfListedOnes) {
  // Checked only at HELLO, an unlisted user's silent connections held
  // --max-connections slots until the handshake timeout: listed users got
  // `overloaded` for as long as it kept reconnecting. Refused at accept,
  // they take no slot.
  REQUIRE_ROOT();
  Daemon d({.extra_args = {"--socket-mode", "0666", "--allow-uid", "12345", "--max-connections",
                           "4", "--handshake-timeout-ms", "600000"}});
  open_directory_to_others(d);
  NobodysConnections silent([&] {
    std::vector<int> fds;
    for (int i = 0; i < 8; ++i) {
      const int fd = connect_raw(d.socket_path());
      if (fd < 0) ::_exit(3);
      fds.push_back(fd);  // and never a word
    }
    return static_cast<int>(fds.size());
  });
  ASSERT_EQ(silent.held(), 8) << "the unlisted client could not connect";
  // Refused at accept, all eight are counted without a word from them (while
  // they held the slots, this connect was refused with `overloaded`).
  ASSERT_TRUE(eventually([&] {
    auto listed = Client::connect(d.socket_path());
    EXPECT_TRUE(listed.ok()) << listed.status().to_string() << "\n" << d.log();
    if (!listed.ok()) return true;  // failed already: stop waiting
    auto stats = listed->stats();
    if (!stats.ok()) return false;
    for (const auto& [key, value] : *stats) {
      if (key == "permission_denied") return std::get<std::uint64_t>(value) == 8;
    }
    return false;
  })) << d.log();
  const int status = silent.finish();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(AccessControl, OneUsersIdleConnectionsAtTheLimitLeaveRoomForAnotherUser) {
  // Another user that opens connections until the limit and keeps them
  // idle kept every other client out (`overloaded`). At the limit a new
  // client takes the place of an idle connection without leases of its own
  // uid or of a uid holding more connections than its own: the hog only
  // ever replaces its own, and the other user's connections stay. No
  // per-uid share, so that the hog reaches the limit.
  REQUIRE_ROOT();
  constexpr int kLimit = 8;
  Daemon d({.extra_args = {"--socket-mode", "0666", "--max-connections", std::to_string(kLimit),
                           "--max-connections-per-uid", "0"}});
  open_directory_to_others(d);
  Client mine = d.connect();  // idle from now on, as the hog's are
  // As many as it may hold, then three times as many: it holds what it
  // gets, idle.
  NobodysConnections hog([&] {
    std::vector<int> fds;
    for (int i = 0; i < 4 * kLimit; ++i) {
      if (const int fd = hello_raw(d.socket_path()); fd >= 0) fds.push_back(fd);
    }
    return static_cast<int>(fds.size());
  });
  EXPECT_EQ(hog.held(), 4 * kLimit) << "each of its connections took the place of its own oldest";
  EXPECT_TRUE(mine.health().ok()) << "the other user took this user's idle connection\n"
                                  << d.log();
  auto another = Client::connect(d.socket_path());
  ASSERT_TRUE(another.ok()) << another.status().to_string() << "\n" << d.log();
  EXPECT_TRUE(another->health().ok());
  EXPECT_TRUE(mine.health().ok());
  const int status = hog.finish();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(AccessControl, AUserHoldingALeaseOnEachConnectionLeavesRoomForAnotherUser) {
  // Connections holding leases are never closed for room (nor for being
  // idle): another user that opened connections until refused, each holding
  // a lease on a tiny adapter, took all of them and every other client got
  // `overloaded` for as long as it held them. One uid now holds at most
  // --max-connections-per-uid, by default three quarters of them.
  REQUIRE_ROOT();
  constexpr int kLimit = 8;
  constexpr int kShare = kLimit * 3 / 4;
  Daemon d({.extra_args = {"--socket-mode", "0666", "--max-connections", std::to_string(kLimit)}});
  open_directory_to_others(d);
  d.add_adapter("a", fixture::AdapterSpec{.rank = 1, .layers = 1, .hidden = 8});
  // Exits 5 when an ACQUIRE fails, 6 when the refusal is not the per-uid one.
  NobodysConnections hog([&] {
    std::vector<int> fds;
    for (int i = 0; i < 4 * kLimit; ++i) {
      Status refused;
      const int fd = hello_raw(d.socket_path(), &refused);
      if (fd < 0) {
        const bool per_uid = refused.code() == Errc::overloaded &&
                             refused.message().find("--max-connections-per-uid") !=
                                 std::string::npos;
        if (!per_uid) ::_exit(6);
        break;
      }
      ipc::Request acquire;
      acquire.op = ipc::Op::acquire;
      acquire.names = {"a"};
      (void)ipc::write_frame(fd, ipc::encode_request(acquire));
      auto granted = ipc::read_frame(fd, ipc::kMaxReplyFrame);
      if (!granted || !ipc::decode_acquire_reply(granted->body).ok()) ::_exit(5);
      fds.push_back(fd);  // holding its lease, idle from now on
    }
    return static_cast<int>(fds.size());
  });
  ASSERT_EQ(hog.held(), kShare) << d.log();
  // The quarter it cannot take stays for other uids: this one's clients
  // connect and are served.
  std::vector<std::unique_ptr<Client>> mine;
  std::vector<Lease> held;  // released before their clients close
  for (int i = kShare; i < kLimit; ++i) {
    auto client = Client::connect(d.socket_path());
    ASSERT_TRUE(client.ok()) << client.status().to_string() << "\n" << d.log();
    mine.push_back(std::make_unique<Client>(std::move(client).value()));
    auto lease = mine.back()->acquire("a");
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    held.push_back(std::move(lease).value());
  }
  EXPECT_TRUE(eventually([&] {
    return d.log().find("uid 65534 holds " + std::to_string(kShare) +
                        " connections (--max-connections-per-uid)") != std::string::npos;
  })) << d.log();
  const int status = hog.finish();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(AccessControl, BadFlagValuesStopTheDaemonWithAClearError) {
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--socket-mode", "0460"},  // the owner could not write
        std::vector<std::string>{"--socket-mode", "rw"},
        std::vector<std::string>{"--socket-group", "no-such-group-here"},
        std::vector<std::string>{"--allow-uid", "no-such-user-here"},
        std::vector<std::string>{"--allow-gid", "1,,2"}}) {
    // A root that does not exist: were the flag accepted, genomed would
    // still exit (1, at start) rather than serve.
    std::vector<std::string> argv = {binary("genomed"), "--socket", "/tmp/unused.sock", "--root",
                                     "/nonexistent-genomed-root"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    const auto r = run_command(argv);
    EXPECT_EQ(r.exit_code, 2) << bad[0] << " " << bad[1];
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace genomed::testing
