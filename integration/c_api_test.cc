// The C interface (genomed/genomed.h) against the real daemon: a lease seen
// through C is the C++ client's lease (same tensors, bytes, modules, config),
// errors arrive as codes with names, batches are all or nothing, release and
// close keep the C++ lifetimes, and verify names a changed tensor.
#include "genomed/genomed.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

struct ClientCloser {
  void operator()(genomed_client* c) const { genomed_client_close(c); }
};
struct LeaseReleaser {
  void operator()(genomed_lease* l) const { genomed_lease_release(l); }
};
using CClient = std::unique_ptr<genomed_client, ClientCloser>;
using CLease = std::unique_ptr<genomed_lease, LeaseReleaser>;

CClient connect_c(const Daemon& daemon, const char* name = "c-api-test") {
  genomed_client_options options;
  genomed_client_options_init(&options);
  options.client_name = name;
  genomed_client* client = nullptr;
  genomed_error error;
  const genomed_errc rc = genomed_connect(daemon.socket_path().c_str(), &options, &client, &error);
  EXPECT_EQ(rc, GENOMED_OK) << error.message;
  return CClient(client);
}

CLease acquire_c(genomed_client* client, const char* name) {
  genomed_lease* lease = nullptr;
  genomed_error error;
  const genomed_errc rc = genomed_acquire(client, name, GENOMED_TIMEOUT_DEFAULT, &lease, &error);
  EXPECT_EQ(rc, GENOMED_OK) << genomed_errc_name(rc) << ": " << error.message;
  return CLease(lease);
}

// The daemon's lease count of `name` (0 if it is not listed).
std::uint64_t leases_of(const Daemon& daemon, const std::string& name) {
  Client client = daemon.connect();
  auto list = client.list();
  EXPECT_TRUE(list.ok()) << list.status().to_string();
  if (!list.ok()) return 0;
  for (const AdapterInfo& a : *list) {
    if (a.name == name) return a.leases;
  }
  return 0;
}

// Offset of `p` in the arena mapping of this process that holds it.
std::int64_t arena_offset(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:genomed-") == std::string::npos) continue;
    const std::size_t dash = line.find('-');
    const std::uintptr_t begin = std::stoull(line.substr(0, dash), nullptr, 16);
    const std::uintptr_t end = std::stoull(line.substr(dash + 1), nullptr, 16);
    if (at >= begin && at < end) return static_cast<std::int64_t>(at - begin);
  }
  return -1;
}

TEST(CApiDaemon, ALeaseShowsWhatTheCppClientShows) {
  Daemon daemon;
  daemon.add_adapter("a", {.rank = 8, .layers = 2, .hidden = 64, .lora_alpha = 32, .seed = 5});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  EXPECT_EQ(genomed_client_daemon_pid(client.get()), static_cast<std::uint64_t>(daemon.pid()));
  EXPECT_EQ(genomed_client_arena_bytes(client.get()), DaemonOptions{}.budget_bytes);
  EXPECT_EQ(genomed_client_broken(client.get()), 0);
  CLease lease = acquire_c(client.get(), "a");
  ASSERT_TRUE(lease);

  Client cpp_client = daemon.connect();
  auto cpp = cpp_client.acquire("a");
  ASSERT_TRUE(cpp.ok()) << cpp.status().to_string();

  EXPECT_STREQ(genomed_lease_name(lease.get()), "a");
  EXPECT_EQ(genomed_lease_generation(lease.get()), cpp->generation());
  EXPECT_NE(genomed_lease_id(lease.get()), 0u);
  EXPECT_EQ(genomed_lease_lora_rank(lease.get()), 8u);
  EXPECT_EQ(genomed_lease_lora_alpha(lease.get()), 32.0);
  EXPECT_EQ(genomed_lease_config_json(lease.get()), cpp->config().json);

  const auto views = cpp->tensors();
  ASSERT_EQ(genomed_lease_tensor_count(lease.get()), views.size());
  ASSERT_EQ(views.size(), 8u);
  genomed_error error;
  for (std::size_t i = 0; i < views.size(); ++i) {
    genomed_tensor t;
    ASSERT_EQ(genomed_lease_tensor(lease.get(), i, &t, &error), GENOMED_OK) << error.message;
    EXPECT_EQ(t.name, views[i].name);
    EXPECT_EQ(t.dtype, views[i].dtype);
    EXPECT_EQ(t.element_size, views[i].element_size);
    ASSERT_EQ(t.ndim, views[i].shape.size());
    for (std::uint32_t d = 0; d < t.ndim; ++d) EXPECT_EQ(t.shape[d], views[i].shape[d]);
    ASSERT_EQ(t.byte_size, views[i].data.size());
    EXPECT_EQ(std::memcmp(t.data, views[i].data.data(), t.byte_size), 0) << t.name;
    EXPECT_EQ(t.checksum, views[i].checksum);

    genomed_tensor found;
    ASSERT_EQ(genomed_lease_find_tensor(lease.get(), t.name, &found, &error), GENOMED_OK);
    EXPECT_EQ(found.data, t.data);
  }
  genomed_tensor none;
  EXPECT_EQ(genomed_lease_tensor(lease.get(), views.size(), &none, &error),
            GENOMED_ERRC_BAD_REQUEST);
  EXPECT_NE(std::string(error.message).find("has 8 tensors"), std::string::npos) << error.message;
  EXPECT_EQ(genomed_lease_find_tensor(lease.get(), "no.such.tensor", &none, &error),
            GENOMED_ERRC_NOT_FOUND);
  EXPECT_NE(std::string(error.message).find("no.such.tensor"), std::string::npos);

  const auto modules = cpp->modules();
  ASSERT_EQ(genomed_lease_module_count(lease.get()), modules.size());
  ASSERT_EQ(modules.size(), 4u);
  for (std::size_t i = 0; i < modules.size(); ++i) {
    genomed_module m;
    ASSERT_EQ(genomed_lease_module(lease.get(), i, &m, &error), GENOMED_OK) << error.message;
    EXPECT_EQ(m.path, modules[i].path);
    EXPECT_EQ(m.kind, GENOMED_MODULE_LINEAR);
    EXPECT_EQ(m.rank, modules[i].rank);
    EXPECT_EQ(m.alpha, modules[i].alpha);
    EXPECT_EQ(m.scaling, modules[i].scaling);
    EXPECT_EQ(m.scaling, 4.0);  // alpha 32 / rank 8
    ASSERT_LT(m.a, views.size());
    ASSERT_LT(m.b, views.size());
    EXPECT_EQ(views[m.a].name, modules[i].a->name);
    EXPECT_EQ(views[m.b].name, modules[i].b->name);
    EXPECT_EQ(m.magnitude, GENOMED_NO_TENSOR);
    EXPECT_EQ(m.lora_bias, GENOMED_NO_TENSOR);
  }
  EXPECT_EQ(genomed_lease_verify(lease.get(), &error), GENOMED_OK) << error.message;
  EXPECT_EQ(error.message[0], '\0');
}

TEST(CApiDaemon, ErrorsArriveAsCodesWithNamesAndLeaveTheClientUsable) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  genomed_lease* lease = reinterpret_cast<genomed_lease*>(0x1);
  genomed_error error;
  EXPECT_EQ(genomed_acquire(client.get(), "missing", GENOMED_TIMEOUT_DEFAULT, &lease, &error),
            GENOMED_ERRC_NOT_FOUND);
  EXPECT_EQ(lease, nullptr);
  EXPECT_EQ(error.code, GENOMED_ERRC_NOT_FOUND);
  EXPECT_STREQ(genomed_errc_name(error.code), "not_found");
  EXPECT_NE(std::string(error.message).find("missing"), std::string::npos) << error.message;
  EXPECT_EQ(genomed_acquire(client.get(), "../a", GENOMED_TIMEOUT_DEFAULT, &lease, &error),
            GENOMED_ERRC_INVALID_NAME);
  EXPECT_EQ(genomed_acquire(client.get(), "a", -5, &lease, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_EQ(genomed_client_broken(client.get()), 0);
  // No deadline at all is a valid choice.
  ASSERT_EQ(genomed_acquire(client.get(), "a", GENOMED_TIMEOUT_NONE, &lease, &error), GENOMED_OK)
      << error.message;
  genomed_lease_release(lease);
}

TEST(CApiDaemon, ABatchIsAllOrNothing) {
  Daemon daemon;
  daemon.add_adapter("a", {.seed = 1});
  daemon.add_adapter("b", {.seed = 2});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  genomed_error error;
  genomed_lease* leases[2] = {nullptr, nullptr};
  const char* both[2] = {"b", "a"};
  ASSERT_EQ(genomed_acquire_batch(client.get(), both, 2, GENOMED_TIMEOUT_DEFAULT, leases, &error),
            GENOMED_OK)
      << error.message;
  CLease b(leases[0]), a(leases[1]);
  EXPECT_STREQ(genomed_lease_name(b.get()), "b");
  EXPECT_STREQ(genomed_lease_name(a.get()), "a");

  const char* one_missing[2] = {"a", "missing"};
  EXPECT_EQ(genomed_acquire_batch(client.get(), one_missing, 2, GENOMED_TIMEOUT_DEFAULT, leases,
                                  &error),
            GENOMED_ERRC_NOT_FOUND);
  EXPECT_EQ(leases[0], nullptr);
  EXPECT_EQ(leases[1], nullptr);
  // The failed batch was answered: the daemon holds only the first batch's lease on "a".
  EXPECT_EQ(leases_of(daemon, "a"), 1u);

  a.reset();
  b.reset();
  EXPECT_TRUE(eventually([&] { return leases_of(daemon, "a") == 0 && leases_of(daemon, "b") == 0; }))
      << daemon.log();
}

TEST(CApiDaemon, LeasesOutliveTheirClientHandleAndReleaseEndsThem) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  CLease lease = acquire_c(client.get(), "a");
  ASSERT_TRUE(lease);
  client.reset();  // the connection stays open for the lease

  genomed_error error;
  EXPECT_EQ(genomed_lease_verify(lease.get(), &error), GENOMED_OK) << error.message;
  EXPECT_EQ(leases_of(daemon, "a"), 1u);
  lease.reset();  // RELEASE, and the last reference closes the socket
  EXPECT_TRUE(eventually([&] { return leases_of(daemon, "a") == 0; })) << daemon.log();
}

TEST(CApiDaemon, VerifyNamesAChangedTensor) {
  Daemon daemon;
  daemon.add_adapter("a", {.seed = 9});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  CLease lease = acquire_c(client.get(), "a");
  ASSERT_TRUE(lease);
  genomed_error error;
  genomed_tensor victim;
  ASSERT_EQ(genomed_lease_tensor(lease.get(), 3, &victim, &error), GENOMED_OK);
  const auto* bytes = static_cast<const unsigned char*>(victim.data);
  const std::int64_t at = arena_offset(bytes + 7);
  ASSERT_GE(at, 0);
  const int arena = open_arena_writable(daemon.pid());
  ASSERT_GE(arena, 0);
  const unsigned char before = bytes[7];
  const unsigned char after = before ^ 0x10;
  ASSERT_EQ(::pwrite(arena, &after, 1, at), 1);

  EXPECT_EQ(genomed_lease_verify(lease.get(), &error), GENOMED_ERRC_LAYOUT_INVALID);
  EXPECT_STREQ(genomed_errc_name(error.code), "layout_invalid");
  EXPECT_NE(std::string(error.message).find(victim.name), std::string::npos) << error.message;

  ASSERT_EQ(::pwrite(arena, &before, 1, at), 1);
  ::close(arena);
  EXPECT_EQ(genomed_lease_verify(lease.get(), &error), GENOMED_OK) << error.message;
}

}  // namespace
}  // namespace genomed::testing
