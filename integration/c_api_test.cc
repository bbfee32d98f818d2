// The C interface (genomed/genomed.h) against the real daemon: a lease seen
// through C is the C++ client's lease (same tensors, bytes, modules, config),
// errors arrive as codes with names, batches are all or nothing, release and
// close keep the C++ lifetimes, and verify names a changed tensor.
#include "genomed/genomed.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
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

TEST(CApiDaemon, ReloadSwapsInANewGenerationAndLeasesShowTheirDigest) {
  Daemon daemon;
  daemon.add_adapter("a", {.seed = 1});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  CLease old = acquire_c(client.get(), "a");
  ASSERT_TRUE(old);
  const std::string old_digest = genomed_lease_digest(old.get());
  EXPECT_EQ(old_digest.size(), 32u);
  EXPECT_STREQ(genomed_lease_digest(nullptr), "");

  daemon.add_adapter("a", {.seed = 2});
  std::uint64_t generation = 0;
  genomed_error error;
  ASSERT_EQ(genomed_reload(client.get(), "a", GENOMED_TIMEOUT_DEFAULT, &generation, &error),
            GENOMED_OK)
      << error.message;
  EXPECT_NE(generation, genomed_lease_generation(old.get()));
  CLease now = acquire_c(client.get(), "a");
  ASSERT_TRUE(now);
  EXPECT_EQ(genomed_lease_generation(now.get()), generation);
  EXPECT_NE(std::string(genomed_lease_digest(now.get())), old_digest);
  EXPECT_EQ(std::string(genomed_lease_digest(old.get())), old_digest);  // the old copy, intact
  EXPECT_EQ(genomed_lease_verify(old.get(), &error), GENOMED_OK) << error.message;
  EXPECT_EQ(genomed_reload(client.get(), "missing", GENOMED_TIMEOUT_DEFAULT, nullptr, &error),
            GENOMED_ERRC_NOT_FOUND);
  EXPECT_EQ(genomed_reload(nullptr, "a", GENOMED_TIMEOUT_DEFAULT, nullptr, &error),
            GENOMED_ERRC_BAD_REQUEST);
}

TEST(CApiDaemon, PublishServesBytesWithoutAFileAndRefusesBadOnesWithCodes) {
  Daemon daemon;
  const std::string dir = daemon.add_adapter("files", {.seed = 1});
  const std::string config = read_file(dir + "/adapter_config.json");
  const std::string weights = read_file(dir + "/adapter_model.safetensors");
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  std::uint64_t generation = 0;
  genomed_error error;
  ASSERT_EQ(genomed_publish(client.get(), "mem", config.data(), config.size(), weights.data(),
                            weights.size(), GENOMED_TIMEOUT_DEFAULT, &generation, &error),
            GENOMED_OK)
      << error.message;
  CLease mem = acquire_c(client.get(), "mem");
  CLease files = acquire_c(client.get(), "files");
  ASSERT_TRUE(mem && files);
  EXPECT_EQ(genomed_lease_generation(mem.get()), generation);
  EXPECT_EQ(std::string(genomed_lease_digest(mem.get())), genomed_lease_digest(files.get()));
  EXPECT_EQ(genomed_publish(client.get(), "mem", "{", 1, weights.data(), weights.size(),
                            GENOMED_TIMEOUT_DEFAULT, nullptr, &error),
            GENOMED_ERRC_CONFIG_INVALID_JSON);
  EXPECT_EQ(genomed_publish(client.get(), "mem", nullptr, 3, weights.data(), weights.size(),
                            GENOMED_TIMEOUT_DEFAULT, nullptr, &error),
            GENOMED_ERRC_BAD_REQUEST);
  EXPECT_EQ(genomed_reload(client.get(), "mem", GENOMED_TIMEOUT_DEFAULT, nullptr, &error),
            GENOMED_ERRC_NOT_FOUND)
      << "a RELOAD reads files: a published name has none";
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

// A daemon serving adapter "a", a C client of it and a lease on "a".
struct LeasedAdapter {
  explicit LeasedAdapter(std::uint64_t seed) {
    daemon.add_adapter("a", {.seed = seed});
    client = connect_c(daemon);
    if (client) lease = acquire_c(client.get(), "a");
  }
  Daemon daemon;
  CClient client;
  CLease lease;
};

TEST(CApiDaemon, VerifyNamesAChangedTensor) {
  LeasedAdapter leased(9);
  const Daemon& daemon = leased.daemon;
  const CLease& lease = leased.lease;
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

// A pre-fork server's child inherits the C handles: releasing and closing
// them there frees them and sends nothing (the parent's leases, through the
// socket and through the lease-slot page, stay held), and a request on the
// inherited client is not_connected.
TEST(CApiDaemon, AChildOfForkLetsGoOfInheritedHandlesWithoutEndingTheParentsLeases) {
  Daemon daemon;
  daemon.add_adapter("a", {.seed = 5});
  CClient client = connect_c(daemon);
  ASSERT_TRUE(client);
  CLease first = acquire_c(client.get(), "a");   // grants the lease slot
  CLease second = acquire_c(client.get(), "a");  // through it
  ASSERT_TRUE(first && second);
  ASSERT_EQ(leases_of(daemon, "a"), 2u);

  const int code = in_child([&] {
    int wrong = 0;
    genomed_lease* mine = nullptr;
    genomed_error error;
    if (genomed_acquire(client.get(), "a", GENOMED_TIMEOUT_DEFAULT, &mine, &error) !=
            GENOMED_ERRC_NOT_CONNECTED ||
        std::strstr(error.message, "connect() again") == nullptr)
      ++wrong;
    if (genomed_client_broken(client.get()) != 1) ++wrong;
    genomed_lease_release(first.release());
    genomed_lease_release(second.release());
    genomed_client_close(client.release());
    return wrong;
  });
  EXPECT_EQ(code, 0) << daemon.log();
  EXPECT_EQ(leases_of(daemon, "a"), 2u) << daemon.log();
  genomed_error error;
  EXPECT_EQ(genomed_lease_verify(first.get(), &error), GENOMED_OK) << error.message;
  EXPECT_EQ(genomed_client_broken(client.get()), 0);
  CLease third = acquire_c(client.get(), "a");
  EXPECT_TRUE(third);
}

template <class T>
struct Arg {
  T value;
  bool hostile;  // the call must refuse it with bad_request
};

template <class T>
Arg<T> pick(std::mt19937_64& rng, std::initializer_list<Arg<T>> options) {
  return options.begin()[rng() % options.size()];
}

// Every entry point of genomed.h driven by a seeded random sequence of calls
// whose arguments come from pools of hostile values (NULL, counts of 0 and
// past GENOMED_MAX_BATCH up to SIZE_MAX, indexes at and past the end, NULL
// entries, strings one byte past their limit or a megabyte long, negative
// timeouts) and valid ones. The property: a call with a hostile argument
// returns bad_request with a message, and writes no output it must not
// (canaries in and past every output); a call with only valid arguments is
// never refused as bad_request. Under ASan (scripts/sanitizers.sh) a read or
// a write past an array or a string fails it too. (It used to crash at the
// first genomed_acquire_batch with a count of SIZE_MAX.)
TEST(CApiDaemon, HostileArgumentsAreBadRequestsAndNeverUndefined) {
  LeasedAdapter leased(4);
  const Daemon& daemon = leased.daemon;
  const CClient& client = leased.client;
  const CLease& lease = leased.lease;
  ASSERT_TRUE(client && lease);
  const std::size_t tensors = genomed_lease_tensor_count(lease.get());
  const std::size_t modules = genomed_lease_module_count(lease.get());
  ASSERT_GT(tensors, 0u);
  ASSERT_GT(modules, 0u);
  genomed_error error;
  genomed_tensor first;
  ASSERT_EQ(genomed_lease_tensor(lease.get(), 0, &first, &error), GENOMED_OK);
  const std::string first_name = first.name;

  const std::string long_name(GENOMED_MAX_NAME + 1, 'n');
  const std::string long_tensor(GENOMED_MAX_TENSOR_NAME + 1, 't');
  const std::string long_client(GENOMED_MAX_CLIENT_NAME + 1, 'c');
  const std::string huge(1 << 20, 'h');
  const std::string socket = daemon.socket_path();
  auto* const canary = reinterpret_cast<genomed_lease*>(std::uintptr_t{0x5a5a5a5a});

  constexpr std::uint64_t kSeed = 20261207;
  std::mt19937_64 rng(kSeed);
  const auto timeout = [&] {
    return pick<int64_t>(rng, {{GENOMED_TIMEOUT_DEFAULT, false},
                               {GENOMED_TIMEOUT_NONE, false},
                               {60000, false},
                               {INT64_MAX, false},
                               {-3, true},
                               {INT64_MIN, true}});
  };
  const auto a_client = [&] {
    return pick<genomed_client*>(rng, {{nullptr, true}, {client.get(), false}});
  };
  const auto a_lease = [&] {
    return pick<const genomed_lease*>(rng, {{nullptr, true}, {lease.get(), false}});
  };
  int refused = 0;
  int step = 0;
  const auto expect = [&](const char* fn, genomed_errc rc, bool hostile, const genomed_error* e) {
    if (hostile) {
      ++refused;
      EXPECT_EQ(rc, GENOMED_ERRC_BAD_REQUEST) << fn << ", step " << step << ", seed " << kSeed;
      if (e != nullptr) {
        EXPECT_GT(std::strlen(e->message), 0u) << fn << ", step " << step;
      }
    } else {
      EXPECT_NE(rc, GENOMED_ERRC_BAD_REQUEST)
          << fn << ", step " << step << ", seed " << kSeed << ": " << (e ? e->message : "");
    }
  };

  for (; step < 2000; ++step) {
    genomed_error* err = rng() % 4 == 0 ? nullptr : &error;
    const bool no_out = rng() % 5 == 0;
    switch (rng() % 6) {
      case 0: {
        const auto c = a_client();
        const auto n = pick<const char*>(rng, {{nullptr, true},
                                               {"a", false},
                                               {"missing", false},
                                               {long_name.c_str(), true},
                                               {huge.c_str(), true}});
        const auto t = timeout();
        genomed_lease* out = canary;
        const genomed_errc rc = genomed_acquire(c.value, n.value, t.value, no_out ? nullptr : &out, err);
        expect("genomed_acquire", rc, c.hostile || n.hostile || t.hostile || no_out, err);
        if (!no_out) {
          EXPECT_EQ(out != nullptr, rc == GENOMED_OK) << "step " << step;
          if (rc == GENOMED_OK) genomed_lease_release(out);
        }
        break;
      }
      case 1: {
        const auto c = a_client();
        const auto count = pick<std::size_t>(rng, {{0, true},
                                                   {1, false},
                                                   {2, false},
                                                   {GENOMED_MAX_BATCH, false},
                                                   {GENOMED_MAX_BATCH + 1, true},
                                                   {SIZE_MAX / 2 + 1, true},
                                                   {SIZE_MAX, true}});
        std::array<const char*, GENOMED_MAX_BATCH + 2> names;
        names.fill("a");
        const std::size_t at = rng() % names.size();
        bool bad_name = false;
        switch (rng() % 4) {
          case 1:
            names[at] = nullptr;
            bad_name = at < count.value;
            break;
          case 2:
            names[at] = long_name.c_str();
            bad_name = at < count.value;
            break;
          case 3:
            names[at] = "missing";  // not_found: all or nothing
            break;
        }
        const bool names_null = rng() % 6 == 0;
        const auto t = timeout();
        std::array<genomed_lease*, GENOMED_MAX_BATCH + 2> out;
        out.fill(canary);
        const genomed_errc rc = genomed_acquire_batch(c.value, names_null ? nullptr : names.data(),
                                                      count.value, t.value,
                                                      no_out ? nullptr : out.data(), err);
        expect("genomed_acquire_batch", rc,
               c.hostile || count.hostile || names_null || bad_name || t.hostile || no_out, err);
        const std::size_t written = count.hostile || no_out ? 0 : count.value;
        for (std::size_t i = 0; i < out.size(); ++i) {
          if (i >= written) {
            EXPECT_EQ(out[i], canary) << "leases[" << i << "] written, step " << step;
          } else if (rc == GENOMED_OK) {
            EXPECT_NE(out[i], nullptr);
            genomed_lease_release(out[i]);
          } else {
            EXPECT_EQ(out[i], nullptr) << "leases[" << i << "], step " << step;
          }
        }
        break;
      }
      case 2:
      case 3: {
        const bool tensor = rng() % 2 == 0;
        const std::size_t n = tensor ? tensors : modules;
        const auto l = a_lease();
        const auto index = pick<std::size_t>(rng, {{0, false},
                                                   {n - 1, false},
                                                   {n, true},
                                                   {n + rng() % 1000, true},
                                                   {SIZE_MAX, true}});
        union {
          genomed_tensor t;
          genomed_module m;
        } out, before;
        std::memset(&out, 0x5a, sizeof out);
        before = out;
        const genomed_errc rc =
            tensor ? genomed_lease_tensor(l.value, index.value, no_out ? nullptr : &out.t, err)
                   : genomed_lease_module(l.value, index.value, no_out ? nullptr : &out.m, err);
        expect(tensor ? "genomed_lease_tensor" : "genomed_lease_module", rc,
               l.hostile || index.hostile || no_out, err);
        if (rc != GENOMED_OK) {
          EXPECT_EQ(std::memcmp(&out, &before, sizeof out), 0) << step;
        }
        break;
      }
      case 4: {
        const auto l = a_lease();
        const auto n = pick<const char*>(rng, {{nullptr, true},
                                               {first_name.c_str(), false},
                                               {"nope", false},
                                               {long_tensor.c_str(), true},
                                               {huge.c_str(), true}});
        genomed_tensor out;
        const genomed_errc rc =
            genomed_lease_find_tensor(l.value, n.value, no_out ? nullptr : &out, err);
        expect("genomed_lease_find_tensor", rc, l.hostile || n.hostile || no_out, err);
        if (!l.hostile && !n.hostile && !no_out) {
          EXPECT_EQ(rc, n.value == first_name.c_str() ? GENOMED_OK : GENOMED_ERRC_NOT_FOUND);
        }
        break;
      }
      default: {
        const auto path = pick<const char*>(
            rng, {{nullptr, true}, {socket.c_str(), false}, {huge.c_str(), true}});
        genomed_client_options options;
        genomed_client_options_init(&options);
        const auto name = pick<const char*>(
            rng, {{nullptr, false}, {"x", false}, {long_client.c_str(), true}});
        options.client_name = name.value;
        bool bad_option = name.hostile;
        for (int64_t* field : {&options.connect_timeout_ms, &options.request_timeout_ms,
                               &options.load_timeout_ms}) {
          const auto t = timeout();
          *field = t.value;
          bad_option = bad_option || t.hostile;
        }
        const bool no_options = rng() % 3 == 0;
        genomed_client* out = nullptr;
        const genomed_errc rc = genomed_connect(path.value, no_options ? nullptr : &options,
                                                no_out ? nullptr : &out, err);
        expect("genomed_connect", rc,
               path.hostile || no_out || (!no_options && bad_option), err);
        genomed_client_close(out);
        // And the calls that report no error: defaults for NULL, never a crash.
        const auto l = a_lease();
        EXPECT_EQ(genomed_lease_verify(l.value, err), l.hostile ? GENOMED_ERRC_BAD_REQUEST : GENOMED_OK);
        EXPECT_NE(genomed_lease_name(l.value), nullptr);
        EXPECT_NE(genomed_lease_config_json(l.value), nullptr);
        (void)genomed_lease_tensor_count(l.value);
        (void)genomed_lease_module_count(l.value);
        EXPECT_NE(genomed_errc_name(static_cast<genomed_errc>(rng())), nullptr);
        genomed_client_options_init(nullptr);
        EXPECT_EQ(genomed_client_broken(nullptr), 1);
        break;
      }
    }
  }
  EXPECT_GT(refused, 500);
  EXPECT_EQ(genomed_client_broken(client.get()), 0);
  EXPECT_EQ(genomed_lease_verify(lease.get(), &error), GENOMED_OK) << error.message;
  // Nothing leaked: only the first lease is held.
  EXPECT_TRUE(eventually([&] { return leases_of(daemon, "a") == 1; })) << daemon.log();
}

}  // namespace
}  // namespace genomed::testing
