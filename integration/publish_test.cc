// PUBLISH with the real daemon and workers (issue 23): an adapter handed
// over as two sealed memfds, with no file under any root, is validated as
// files are (the same digest as the same bytes loaded from files), served,
// and swapped in under load as RELOAD swaps. Every hostile PUBLISH gets its
// typed error, leaks no descriptor in the daemon, and leaves it serving;
// only genomed's own user (or --publish-uid / --publish-gid) may publish.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "common/fd.h"
#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"
#include "integration/raw_socket.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"

namespace genomed::testing {
namespace {

const fixture::AdapterSpec kV1{.rank = 8, .layers = 2, .hidden = 64, .seed = 3};
const fixture::AdapterSpec kV2{.rank = 8, .layers = 2, .hidden = 64, .seed = 4};

struct AdapterBytes {
  std::string config;
  std::string weights;
  std::string weights_path;  // where they were written, for expect_file_bytes
};

// `spec`'s two files, written outside every root, and their bytes.
AdapterBytes adapter_bytes(const Daemon& d, const std::string& tag,
                           const fixture::AdapterSpec& spec) {
  const std::string dir = d.dir() + "/outside/" + tag;
  EXPECT_TRUE(fixture::write_adapter(dir, spec).ok());
  return {read_file(dir + "/adapter_config.json"), read_file(dir + "/adapter_model.safetensors"),
          dir + "/adapter_model.safetensors"};
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

Result<ReloadInfo> publish(Client& c, const std::string& name, const AdapterBytes& a) {
  return c.publish(name, as_bytes(a.config), as_bytes(a.weights));
}

// A memfd holding `bytes`, with `seals` added (0: none).
Fd memfd_with(const std::string& bytes, int seals, bool allow_sealing = true) {
  Fd fd(::memfd_create("publish-test", MFD_CLOEXEC | (allow_sealing ? MFD_ALLOW_SEALING : 0)));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  if (seals != 0) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0) << std::strerror(errno);
  }
  return fd;
}

constexpr int kSealed = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

// One PUBLISH of `name` on a raw connection with `fds` riding along; its
// error code (ok for a success).
Errc raw_publish(const Daemon& d, const std::string& name, std::vector<int> fds) {
  RawSocket s(d.socket_path());
  s.hello();
  ipc::Request req;
  req.op = ipc::Op::publish;
  req.names = {name};
  EXPECT_TRUE(ipc::write_frame(s.fd(), ipc::encode_request(req), std::span<const int>(fds)).ok());
  auto frame = s.reply();
  EXPECT_TRUE(frame.ok()) << frame.status().to_string();
  if (!frame.ok()) return Errc::internal;
  auto reply = ipc::decode_reload_reply(frame->body);
  return reply.ok() ? Errc::ok : reply.code();
}

TEST(Publish, BytesWithoutAFileServeWithTheDigestOfTheSameFilesAndSwapLikeReload) {
  Daemon daemon;
  daemon.add_adapter("from-files", kV1);
  Client client = daemon.connect();
  const AdapterBytes v1 = adapter_bytes(daemon, "v1", kV1);
  const AdapterBytes v2 = adapter_bytes(daemon, "v2", kV2);

  // Nothing named "p" exists under the root: the bytes are all there is.
  auto first = publish(client, "p", v1);
  ASSERT_TRUE(first.ok()) << first.status().to_string() << "\n" << daemon.log();
  EXPECT_EQ(first->previous_generation, 0u);
  auto files = client.load("from-files");
  ASSERT_TRUE(files.ok()) << files.status().to_string();
  EXPECT_EQ(first->digest, files->digest) << "the same validation and digest as files";

  auto old_lease = client.acquire("p");
  ASSERT_TRUE(old_lease.ok()) << old_lease.status().to_string();
  EXPECT_EQ(old_lease->digest(), first->digest);
  expect_file_bytes(*old_lease, v1.weights_path);
  EXPECT_TRUE(old_lease->verify().ok());

  // A new version under load: the old lease keeps its bytes.
  auto second = publish(client, "p", v2);
  ASSERT_TRUE(second.ok()) << second.status().to_string() << "\n" << daemon.log();
  EXPECT_EQ(second->previous_generation, first->generation);
  EXPECT_EQ(second->previous_leases, 1u);
  EXPECT_NE(second->digest, first->digest);
  auto new_lease = client.acquire("p");
  ASSERT_TRUE(new_lease.ok()) << new_lease.status().to_string();
  EXPECT_EQ(new_lease->generation(), second->generation);
  expect_file_bytes(*new_lease, v2.weights_path);
  expect_file_bytes(*old_lease, v1.weights_path);
  auto listing = client.list();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->size(), 2u);  // from-files and p (once)

  // genomectl publishes a directory the same way.
  const std::string dir = daemon.dir() + "/outside/v1";
  const auto ctl = run_command(
      {binary("genomectl"), "--socket", daemon.socket_path(), "publish", "q", dir});
  EXPECT_EQ(ctl.exit_code, 0) << ctl.err;
  EXPECT_NE(ctl.out.find(first->digest), std::string::npos) << ctl.out;
}

TEST(Publish, AFailedPublishLeavesTheOldVersionServing) {
  Daemon daemon;
  Client client = daemon.connect();
  const AdapterBytes v1 = adapter_bytes(daemon, "v1", kV1);
  auto first = publish(client, "p", v1);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  AdapterBytes bad = v1;
  bad.weights.resize(bad.weights.size() - 1);  // the last tensor is cut short
  auto failed = publish(client, "p", bad);
  EXPECT_EQ(failed.code(), Errc::st_offsets_out_of_bounds) << failed.status().to_string();
  bad = v1;
  bad.config = "{not json";
  EXPECT_EQ(publish(client, "p", bad).code(), Errc::config_invalid_json);
  auto lease = client.acquire("p");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_EQ(lease->digest(), first->digest);
}

TEST(Publish, HostileRequestsGetTypedErrorsLeakNoDescriptorAndTheDaemonServesOn) {
  Daemon daemon;
  const AdapterBytes v1 = adapter_bytes(daemon, "v1", kV1);
  // Warm up: the first publish opens what the daemon keeps open (workers'
  // sockets, this connection's); the descriptors counted after every
  // hostile case below must not be more.
  Client client = daemon.connect();
  ASSERT_TRUE(publish(client, "warm", v1).ok());
  const std::size_t fds_before = open_fds(daemon.pid());

  const Fd config = memfd_with(v1.config, kSealed);
  const Fd weights = memfd_with(v1.weights, kSealed);
  // The descriptor count.
  EXPECT_EQ(raw_publish(daemon, "p", {}), Errc::bad_request);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get()}), Errc::bad_request);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), weights.get(), weights.get()}),
            Errc::bad_request);
  // Not memfds: a pipe, a regular file.
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const Fd pipe_r(pipe_fds[0]), pipe_w(pipe_fds[1]);
  EXPECT_EQ(raw_publish(daemon, "p", {pipe_r.get(), weights.get()}), Errc::bad_request);
  const Fd file(::open(v1.weights_path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), file.get()}), Errc::bad_request);
  // Not sealed, or not against every change.
  const Fd unsealed = memfd_with(v1.weights, 0);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), unsealed.get()}), Errc::bad_request);
  const Fd no_sealing = memfd_with(v1.weights, 0, /*allow_sealing=*/false);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), no_sealing.get()}), Errc::bad_request);
  const Fd half = memfd_with(v1.weights, F_SEAL_SHRINK | F_SEAL_GROW);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), half.get()}), Errc::bad_request);
  // Absurd sizes: a sparse TiB of weights, a config past the worker's limit.
  Fd huge(::memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(huge.get(), 1ll << 40), 0);
  ASSERT_EQ(::fcntl(huge.get(), F_ADD_SEALS, kSealed), 0);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), huge.get()}), Errc::limit_exceeded);
  const Fd big_config = memfd_with(std::string((1 << 20) + 1, ' '), kSealed);
  EXPECT_EQ(raw_publish(daemon, "p", {big_config.get(), weights.get()}), Errc::limit_exceeded);
  // Malformed contents, found by the worker.
  const Fd bad_weights = memfd_with("abc", kSealed);
  EXPECT_EQ(raw_publish(daemon, "p", {config.get(), bad_weights.get()}), Errc::st_file_too_short);
  const Fd bad_config = memfd_with("[1, 2]", kSealed);
  EXPECT_EQ(raw_publish(daemon, "p", {bad_config.get(), weights.get()}),
            Errc::config_invalid_json);
  // Names no adapter may have, a hidden generation's key included.
  EXPECT_EQ(raw_publish(daemon, "../p", {config.get(), weights.get()}), Errc::invalid_name);
  EXPECT_EQ(raw_publish(daemon, std::string("p\0next", 6), {config.get(), weights.get()}),
            Errc::invalid_name);
  // Descriptors with another request are dropped.
  {
    RawSocket s(daemon.socket_path());
    s.hello();
    ipc::Request req;
    req.op = ipc::Op::health;
    const int two[2] = {config.get(), weights.get()};
    ASSERT_TRUE(ipc::write_frame(s.fd(), ipc::encode_request(req), std::span<const int>(two)).ok());
    EXPECT_TRUE(s.reply().ok());
  }
  // A client that sends the frame and dies at once; one that sends the
  // descriptors with half a frame and dies.
  for (const bool whole : {true, false}) {
    RawSocket s(daemon.socket_path());
    s.hello();
    ipc::Request req;
    req.op = ipc::Op::publish;
    req.names = {"dies"};
    const std::string frame = ipc::encode_frame(ipc::encode_request(req));
    const std::string sent = whole ? frame : frame.substr(0, frame.size() / 2);
    const int two[2] = {config.get(), weights.get()};
    ASSERT_TRUE(ipc::send_bytes_now(s.fd(), sent, std::span<const int>(two)).ok());
  }

  // Serving on, and holding no descriptor of any of it (the dead clients'
  // connections are closed by now, their frames' descriptors with them).
  auto ok = publish(client, "p", v1);
  EXPECT_TRUE(ok.ok()) << ok.status().to_string() << "\n" << daemon.log();
  EXPECT_TRUE(client.health().ok());
  EXPECT_TRUE(eventually([&] { return open_fds(daemon.pid()) <= fds_before; }))
      << "daemon descriptors: " << open_fds(daemon.pid()) << ", before: " << fds_before;
}

TEST(Publish, OnlyTheDaemonsUserOrThoseListedMayPublish) {
  if (::geteuid() != 0) GTEST_SKIP() << "runs a client as another user: needs root (CI runs as root)";
  constexpr uid_t kNobody = 65534;
  for (const bool listed : {false, true}) {
    std::vector<std::string> args = {"--socket-mode", "0666"};
    if (listed) args.insert(args.end(), {"--publish-uid", "nobody"});
    Daemon daemon({.extra_args = args});
    ASSERT_EQ(::chmod(daemon.dir().c_str(), 0755), 0);
    const AdapterBytes v1 = adapter_bytes(daemon, "v1", kV1);
    const int code = in_child([&] {
      if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) return 100;
      auto c = Client::connect(daemon.socket_path());
      if (!c) return 101;
      auto r = publish(*c, "p", v1);
      if (!r.ok() && !c->health().ok()) return 102;  // refused, and the connection serves on
      return static_cast<int>(r.code());
    });
    EXPECT_EQ(code, static_cast<int>(listed ? Errc::ok : Errc::permission_denied))
        << (listed ? "--publish-uid nobody" : "default") << "\n" << daemon.log();
    EXPECT_EQ(daemon.stat("permission_denied"), listed ? 0u : 1u);
    // The daemon's own user always may.
    Client own = daemon.connect();
    EXPECT_TRUE(publish(own, "own", v1).ok());
  }
}

}  // namespace
}  // namespace genomed::testing
