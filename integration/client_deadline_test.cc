// Client-side deadlines (issue 8, "Clients have deadlines"): connect, HELLO
// and every request of the C++ client and of genomectl are bounded; a request
// that timed out breaks its connection (a late reply is never taken for the
// next one) while its leases stay held; a daemon reply that breaks the
// protocol is protocol_error. Against the real daemon, stopped with SIGSTOP,
// and against the test's own sockets playing a stuck or lying daemon.
//
// Timing is used only as a generous liveness bound (a timed-out call returns
// by its deadline plus kSlack) and to check that a call did wait for its
// deadline, never as a performance assertion.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "integration/daemon_fixture.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How late a timed-out call may return after its deadline (a liveness bound
// for a loaded CI machine, not a performance claim).
constexpr auto kSlack = 5s;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The state letter of /proc/PID/stat ('T' once stopped).
char process_state(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

// SIGSTOPs a process for the scope (waiting until it is stopped); SIGCONT at
// the latest on destruction, so the fixture can stop the daemon.
class Stopped {
 public:
  explicit Stopped(pid_t pid) : pid_(pid) {
    EXPECT_EQ(::kill(pid_, SIGSTOP), 0);
    EXPECT_TRUE(eventually([&] { return process_state(pid_) == 'T'; }))
        << "pid " << pid_ << " did not stop";
  }
  ~Stopped() { resume(); }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

Client connect_with(const std::string& path, ClientOptions options) {
  auto c = Client::connect(path, options);
  if (!c) throw std::runtime_error("connect failed: " + c.status().to_string());
  return std::move(c).value();
}

// Runs `call`, checks it failed with Errc::timeout no earlier than `deadline`
// and no later than `deadline` + kSlack, and returns its message.
template <class Call>
std::string expect_timeout(Call call, std::chrono::milliseconds deadline) {
  const auto start = Clock::now();
  auto r = call();
  const auto took = Clock::now() - start;
  EXPECT_EQ(r.code(), Errc::timeout) << r.status().to_string();
  EXPECT_GE(took, deadline);
  EXPECT_LT(took, deadline + kSlack) << "the call returned long after its deadline";
  return r.status().message();
}

// ---- a stopped daemon ---------------------------------------------------------------

TEST(ClientDeadline, HealthListAndStatsAgainstAStoppedDaemonTimeOutThenANewConnectionWorks) {
  Daemon daemon;
  ClientOptions options;
  options.request_timeout = 1s;
  Client for_health = connect_with(daemon.socket_path(), options);
  Client for_list = connect_with(daemon.socket_path(), options);
  Client for_stats = connect_with(daemon.socket_path(), options);
  Client other = connect_with(daemon.socket_path(), options);
  {
    Stopped stopped(daemon.pid());
    const std::string health = expect_timeout([&] { return for_health.health(); }, 1s);
    EXPECT_TRUE(contains(health, "health")) << health;
    EXPECT_TRUE(contains(health, "1 s")) << health;
    EXPECT_TRUE(contains(expect_timeout([&] { return for_list.list(); }, 1s), "list"));
    EXPECT_TRUE(contains(expect_timeout([&] { return for_stats.stats(); }, 1s), "stats"));
    // A per-call timeout replaces the default for that call.
    const std::string short_one = expect_timeout([&] { return other.health(300ms); }, 300ms);
    EXPECT_TRUE(contains(short_one, "300 ms")) << short_one;
    // So does connect's: the stopped daemon's kernel accepts the connection,
    // nobody answers HELLO.
    ClientOptions quick = options;
    quick.connect_timeout = 500ms;
    const std::string hello =
        expect_timeout([&] { return Client::connect(daemon.socket_path(), quick); }, 500ms);
    EXPECT_TRUE(contains(hello, "HELLO")) << hello;
  }
  // Running again: the timed-out connections stay broken, a new one works.
  EXPECT_TRUE(for_health.broken());
  EXPECT_EQ(for_health.health().code(), Errc::not_connected);
  auto connected = Client::connect(daemon.socket_path(), options);
  ASSERT_TRUE(connected.ok()) << connected.status().to_string() << "\n" << daemon.log();
  Client fresh = std::move(connected).value();
  auto h = fresh.health();
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_TRUE(h->healthy);
  EXPECT_FALSE(fresh.broken());
}

TEST(ClientDeadline, LoadAndAcquireUseTheLongerLoadTimeout) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  ClientOptions options;
  options.request_timeout = 300ms;
  options.load_timeout = 2s;
  Client for_acquire = connect_with(daemon.socket_path(), options);
  Client for_load = connect_with(daemon.socket_path(), options);
  Stopped stopped(daemon.pid());
  const std::string acquire = expect_timeout([&] { return for_acquire.acquire("a"); }, 2s);
  EXPECT_TRUE(contains(acquire, "acquire") && contains(acquire, "2 s")) << acquire;
  const std::string load = expect_timeout([&] { return for_load.load("a"); }, 2s);
  EXPECT_TRUE(contains(load, "load") && contains(load, "2 s")) << load;
}

TEST(ClientDeadline, ATimedOutConnectionRefusesRequestsButItsLeasesStayHeldAndReleasable) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  daemon.add_adapter("b", {});
  auto client = std::make_unique<Client>(daemon.connect());
  auto a = client->acquire("a");
  auto b = client->acquire("b");
  ASSERT_TRUE(a.ok() && b.ok());
  {
    Stopped stopped(daemon.pid());
    expect_timeout([&] { return client->health(500ms); }, 500ms);
    // Refused at once, without a round trip to the stopped daemon.
    const auto start = Clock::now();
    auto next = client->list();
    EXPECT_EQ(next.code(), Errc::not_connected) << next.status().to_string();
    EXPECT_LT(Clock::now() - start, kSlack);
  }
  // The daemon answers the timed-out HEALTH now; that reply is never taken
  // for the answer to a later request.
  auto later = client->stats();
  EXPECT_EQ(later.code(), Errc::not_connected) << later.status().to_string();
  EXPECT_TRUE(client->broken());
  // The leases are still held: the socket stays open, views stay valid.
  EXPECT_FALSE(a->tensors().empty());
  EXPECT_EQ(daemon.stat("leases_active"), 2u);
  // A release still reaches the daemon (the request frame went out whole).
  a->release();
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 1; }));
  // The rest end when the client and its last lease are gone.
  client.reset();
  EXPECT_EQ(daemon.stat("leases_active"), 1u) << "a lease keeps the connection open";
  b = Status(Errc::cancelled, "dropped");
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0; }));
}

TEST(ClientDeadline, ReleasesToAStoppedDaemonNeverHangThoughItsSocketBufferFills) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  ClientOptions options;
  options.request_timeout = 500ms;
  options.lease_slots = false;  // every release a message
  auto client = std::make_unique<Client>(connect_with(daemon.socket_path(), options));
  // Enough leases that their RELEASE frames overflow the socket buffer.
  std::vector<Lease> leases;
  for (int i = 0; i < 3000; ++i) {
    auto lease = client->acquire("a");
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    leases.push_back(std::move(lease).value());
  }
  {
    Stopped stopped(daemon.pid());
    const auto start = Clock::now();
    for (auto& lease : leases) lease.release();
    // One release waits out its 500 ms for room, then writes stop.
    EXPECT_LT(Clock::now() - start, 500ms + kSlack);
    EXPECT_TRUE(client->broken());
  }
  // What was written is released; the rest end with the socket.
  leases.clear();
  client.reset();
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0; }));
}

TEST(ClientDeadline, WaitingForAnotherThreadsRequestCountsAndSendsNothing) {
  // The worker hangs in the probe of "stuck": thread A's acquire is pending
  // until the load is cancelled.
  Daemon daemon({.load_timeout_ms = 60000, .extra_args = {"--worker-fault", "hang@probe:stuck"}});
  daemon.add_adapter("stuck", {});
  Client shared = daemon.connect();
  auto pending = std::async(std::launch::async, [&] { return shared.acquire("stuck"); });
  Client control = daemon.connect();
  ASSERT_TRUE(eventually([&] {
    auto list = control.list();
    return list.ok() && list->size() == 1 && (*list)[0].state == "loading";
  }));
  const std::string why = expect_timeout([&] { return shared.health(300ms); }, 300ms);
  EXPECT_TRUE(contains(why, "another thread's request")) << why;
  EXPECT_FALSE(shared.broken()) << "nothing was sent: the connection stays usable";
  ASSERT_TRUE(control.unload("stuck").ok());
  EXPECT_EQ(pending.get().code(), Errc::cancelled);
  auto h = shared.health();
  EXPECT_TRUE(h.ok()) << h.status().to_string();
}

TEST(ClientDeadline, GenomectlTimeoutAgainstAStoppedDaemonFailsWithTimeout) {
  Daemon daemon;
  Client connected = daemon.connect();  // proves it served before the stop
  Stopped stopped(daemon.pid());
  for (const char* command : {"health", "list"}) {
    const auto start = Clock::now();
    const auto r = run_command(
        {binary("genomectl"), "--socket", daemon.socket_path(), "--timeout", "1", command});
    EXPECT_LT(Clock::now() - start, 1s + kSlack) << command;
    EXPECT_EQ(r.exit_code, 1) << command << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: timeout: ", 0), 0u) << command << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST(ClientDeadline, GenomectlTimeoutIsValidatedAndDocumented) {
  for (const char* bad : {"0", "-1", "x", "1s", "nan"}) {
    const auto r =
        run_command({binary("genomectl"), "--socket", "/nonexistent", "--timeout", bad, "health"});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "--timeout")) << r.err;
  }
  const auto help = run_command({binary("genomectl"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.out, "--timeout SECONDS")) << help.out;
}

// ---- the test's own sockets ------------------------------------------------------------

// A listening Unix socket in a fresh directory. With a `script`, one thread
// accepts one connection and runs the script on it (then closes it).
class FakeDaemon {
 public:
  explicit FakeDaemon(std::function<void(int)> script = nullptr, int backlog = 16) {
    path_ = dir_ / "fake.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, backlog) != 0) {
      throw std::runtime_error(std::string("bind/listen: ") + std::strerror(errno));
    }
    if (script) {
      thread_ = std::thread([this, script = std::move(script)] {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        script(c);
        ::close(c);
      });
    }
  }
  ~FakeDaemon() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes a pending accept
    if (thread_.joinable()) thread_.join();
    ::close(fd_);  // dir_ (with the socket file) goes after this body
  }
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  ScratchDir dir_{"genomed-fake"};
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

// Reads frames until the client closes the connection.
void until_closed(int fd) {
  while (ipc::read_frame(fd, ipc::kMaxRequestFrame).ok()) {
  }
}

// Reads the HELLO and answers it as genomed does, with a 1 MiB arena.
void good_hello(int fd) {
  ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
  const int arena = ::memfd_create("fake-arena", MFD_CLOEXEC);
  ASSERT_GE(arena, 0);
  ASSERT_EQ(::ftruncate(arena, 1 << 20), 0);
  ipc::HelloReply reply;
  reply.server = "fake";
  reply.arena_bytes = 1 << 20;
  reply.pid = static_cast<std::uint64_t>(::getpid());
  ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(reply), arena).ok());
  ::close(arena);
}

TEST(ClientDeadline, ConnectToASocketWhoseOwnerNeverAnswersHelloTimesOut) {
  FakeDaemon silent;  // listens, never accepts, never answers
  ClientOptions options;
  options.connect_timeout = 500ms;
  const std::string why =
      expect_timeout([&] { return Client::connect(silent.path(), options); }, 500ms);
  EXPECT_TRUE(contains(why, silent.path()) && contains(why, "no HELLO reply")) << why;
  EXPECT_TRUE(contains(why, "500 ms")) << why;
}

TEST(ClientDeadline, ConnectWhileTheListenBacklogIsFullTimesOut) {
  FakeDaemon full(nullptr, /*backlog=*/0);
  // Fill the backlog: non-blocking connects until the kernel refuses one.
  std::vector<int> queued;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, full.path().c_str(), sizeof addr.sun_path - 1);
  for (int i = 0; i < 64; ++i) {
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      ::close(s);
      break;
    }
    queued.push_back(s);
  }
  ASSERT_LT(queued.size(), 64u) << "the backlog never filled";
  ClientOptions options;
  options.connect_timeout = 500ms;
  const std::string why =
      expect_timeout([&] { return Client::connect(full.path(), options); }, 500ms);
  EXPECT_TRUE(contains(why, "accepted no connection")) << why;
  for (int s : queued) ::close(s);
}

TEST(ClientDeadline, ALateReplyIsNeverTakenForTheNextRequest) {
  std::mutex mu;
  std::condition_variable cv;
  bool send_late = false, late_sent = false;
  FakeDaemon fake([&](int fd) {
    good_hello(fd);
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());  // HEALTH
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return send_late; });
    }
    // May fail: a broken connection with no lease closes its socket at once.
    (void)ipc::write_frame(fd, ipc::encode_reply(Health{true, ""}));
    {
      std::lock_guard lock(mu);
      late_sent = true;
    }
    cv.notify_all();
    until_closed(fd);
  });
  Client client = connect_with(fake.path(), {});
  expect_timeout([&] { return client.health(300ms); }, 300ms);
  {
    std::unique_lock lock(mu);
    send_late = true;
    cv.notify_all();
    cv.wait(lock, [&] { return late_sent; });
  }
  // The late HEALTH reply went out (or found the socket closed). Taken for
  // this request's answer it would decode as a healthy daemon.
  auto h = client.health();
  EXPECT_EQ(h.code(), Errc::not_connected)
      << (h.ok() ? "took the stale reply" : h.status().to_string());
}

TEST(ClientDeadline, RepliesThatBreakTheProtocolAreProtocolError) {
  const auto connect_to = [](std::function<void(int)> script) {
    FakeDaemon fake(std::move(script));
    return Client::connect(fake.path(), ClientOptions{});
  };
  // HELLO answered with bytes that are not msgpack.
  auto garbage = connect_to([](int fd) {
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ASSERT_TRUE(ipc::write_frame(fd, "\xc1\xc1 not msgpack").ok());
    until_closed(fd);
  });
  EXPECT_EQ(garbage.code(), Errc::protocol_error) << garbage.status().to_string();
  // A well-formed map of the wrong shape.
  auto shape = connect_to([](int fd) {
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(Health{true, ""})).ok());
    until_closed(fd);
  });
  EXPECT_EQ(shape.code(), Errc::protocol_error) << shape.status().to_string();
  // A correct HELLO reply without the arena descriptor.
  auto no_fd = connect_to([](int fd) {
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ipc::HelloReply reply;
    reply.server = "fake";
    reply.arena_bytes = 1 << 20;
    ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(reply)).ok());
    until_closed(fd);
  });
  EXPECT_EQ(no_fd.code(), Errc::protocol_error) << no_fd.status().to_string();
  EXPECT_TRUE(contains(no_fd.status().message(), "no arena descriptor"))
      << no_fd.status().message();
  // An arena descriptor smaller than the arena it announces.
  auto short_arena = connect_to([](int fd) {
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    const int arena = ::memfd_create("small", MFD_CLOEXEC);
    ASSERT_EQ(::ftruncate(arena, 4096), 0);
    ipc::HelloReply reply;
    reply.server = "fake";
    reply.arena_bytes = 1 << 30;
    ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(reply), arena).ok());
    ::close(arena);
    until_closed(fd);
  });
  EXPECT_EQ(short_arena.code(), Errc::protocol_error) << short_arena.status().to_string();
  // The daemon's own error reply to HELLO is passed on as it is.
  auto refused = connect_to([](int fd) {
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ASSERT_TRUE(
        ipc::write_frame(fd, ipc::encode_error(Status(Errc::unsupported_version, "v9"))).ok());
    until_closed(fd);
  });
  EXPECT_EQ(refused.code(), Errc::unsupported_version) << refused.status().to_string();
}

TEST(ClientDeadline, ADaemonThatRefusesAndClosesBeforeReadingHelloIsHeard) {
  // As genomed at its connection limit: the refusal, then close, HELLO unread
  // (the client's HELLO write may then fail; the refusal is still read).
  for (int i = 0; i < 20; ++i) {
    FakeDaemon refusing([](int fd) {
      ASSERT_TRUE(
          ipc::write_frame(fd, ipc::encode_error(Status(Errc::overloaded, "--max-connections")))
              .ok());
    });
    auto c = Client::connect(refusing.path(), ClientOptions{});
    EXPECT_EQ(c.code(), Errc::overloaded) << c.status().to_string();
  }
}

TEST(ClientDeadline, RequestRepliesThatBreakTheProtocolAreProtocolErrorTheDaemonsErrorsAreNot) {
  FakeDaemon fake([](int fd) {
    good_hello(fd);
    // list: a map without "adapters"
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(Health{true, ""})).ok());
    // acquire of one name: no grant
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(ipc::AcquireReply{})).ok());
    // health: the daemon's own bad_request stays bad_request
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ASSERT_TRUE(
        ipc::write_frame(fd, ipc::encode_error(Status(Errc::bad_request, "your request"))).ok());
    // stats: an error code this client does not know
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ipc::MapWriter unknown;
    unknown.put("ok", false).put("code", std::uint64_t{999}).put("error", "x").put("message", "m");
    ASSERT_TRUE(ipc::write_frame(fd, unknown.finish()).ok());
    // health: a length prefix over the reply limit
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    const char huge[4] = {'\x7f', '\x00', '\x00', '\x00'};
    ASSERT_EQ(::send(fd, huge, sizeof huge, MSG_NOSIGNAL), 4);
    until_closed(fd);
  });
  Client client = connect_with(fake.path(), {});
  auto list = client.list();
  EXPECT_EQ(list.code(), Errc::protocol_error) << list.status().to_string();
  auto acquire = client.acquire("a");
  EXPECT_EQ(acquire.code(), Errc::protocol_error) << acquire.status().to_string();
  EXPECT_TRUE(contains(acquire.status().message(), "granted 0 leases for 1 names"))
      << acquire.status().message();
  auto health = client.health();
  EXPECT_EQ(health.code(), Errc::bad_request) << health.status().to_string();
  EXPECT_EQ(health.status().message(), "your request");
  auto stats = client.stats();
  EXPECT_EQ(stats.code(), Errc::protocol_error) << stats.status().to_string();
  EXPECT_FALSE(client.broken()) << "whole frames keep the stream in step";
  auto huge = client.health();
  EXPECT_EQ(huge.code(), Errc::protocol_error) << huge.status().to_string();
  EXPECT_TRUE(client.broken()) << "a refused frame leaves the stream out of step";
  EXPECT_EQ(client.health().code(), Errc::not_connected);
}

// The RELEASE requests the client sends until it closes the connection.
std::vector<std::uint64_t> releases_until_closed(int fd) {
  std::vector<std::uint64_t> released;
  for (auto frame = ipc::read_frame(fd, ipc::kMaxRequestFrame); frame.ok();
       frame = ipc::read_frame(fd, ipc::kMaxRequestFrame)) {
    auto req = ipc::decode_request(frame->body);
    if (req.ok() && req->op == ipc::Op::release)
      released.insert(released.end(), req->leases.begin(), req->leases.end());
  }
  return released;
}

TEST(ClientDeadline, AGrantForAnotherNameThanAskedIsAProtocolErrorAndEveryGrantIsGivenBack) {
  // What a reply meant for another request looks like: grants for "b" and
  // "a" in answer to acquire(a, b), in the wrong order.
  std::vector<std::uint64_t> released;
  {
    FakeDaemon fake([&released](int fd) {
      good_hello(fd);
      ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
      ipc::AcquireReply reply;
      reply.grants = {{.name = "b", .lease = 1, .offset = 0, .length = 4096, .generation = 1},
                      {.name = "a", .lease = 2, .offset = 0, .length = 4096, .generation = 1}};
      ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(reply)).ok());
      released = releases_until_closed(fd);
    });
    Client client = connect_with(fake.path(), {});
    auto leases = client.acquire(std::vector<std::string>{"a", "b"});
    EXPECT_EQ(leases.code(), Errc::protocol_error) << leases.status().to_string();
    EXPECT_TRUE(contains(leases.status().message(), "grant #0 is for 'b', but 'a' was asked for"))
        << leases.status().message();
  }  // the client closes, the fake daemon's script returns
  EXPECT_EQ(released, (std::vector<std::uint64_t>{1, 2})) << "all or nothing";
}

TEST(ClientDeadline, AListEntryFilledPastItsTotalIsAProtocolError) {
  FakeDaemon fake([](int fd) {
    good_hello(fd);
    ASSERT_TRUE(ipc::read_frame(fd, ipc::kMaxRequestFrame).ok());
    ipc::ListReply reply;
    reply.adapters = {{.name = "a", .state = "loading", .fill_total = 100, .filled = 101}};
    ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_reply(reply)).ok());
    until_closed(fd);
  });
  Client client = connect_with(fake.path(), {});
  auto list = client.list();
  EXPECT_EQ(list.code(), Errc::protocol_error) << list.status().to_string();
  EXPECT_TRUE(contains(list.status().message(), "'filled' (101) exceeds 'fill_total' (100)"))
      << list.status().message();
}

}  // namespace
}  // namespace genomed::testing
