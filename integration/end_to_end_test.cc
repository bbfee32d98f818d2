// The whole path with real parts: genomed, its workers, the arena, the
// socket, the client library and genomectl.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"
#include "layout/dtype.h"

namespace genomed::testing {
namespace {

using layout::DType;

std::string to_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  char hex[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    out += hex;
  }
  return out;
}

class EndToEnd : public ::testing::Test {
 protected:
  Daemon daemon_;
};

TEST_F(EndToEnd, ClientBytesEqualFileBytesForEveryDtype) {
  for (int i = 0; i < layout::kDTypeCount; ++i) {
    const auto dtype = *layout::dtype_from_int(static_cast<std::uint64_t>(i));
    const std::string name = "dtype-" + std::string(layout::dtype_name(dtype));
    fixture::AdapterSpec spec;
    spec.dtype = dtype;
    spec.rank = 4;
    spec.hidden = 24;
    spec.layers = 2;
    spec.seed = static_cast<std::uint64_t>(100 + i);
    const std::string dir = daemon_.add_adapter(name, spec);
    const auto expected = read_file_tensors(dir + "/adapter_model.safetensors");

    Client client = daemon_.connect();
    auto lease = client.acquire(name);
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    ASSERT_EQ(lease->tensors().size(), expected.size()) << name;
    EXPECT_EQ(lease->lora_rank(), 4u);
    for (const auto& t : lease->tensors()) {
      const auto it = expected.find(std::string(t.name));
      ASSERT_NE(it, expected.end()) << t.name;
      EXPECT_EQ(t.dtype, it->second.dtype);
      EXPECT_EQ(std::vector<std::uint64_t>(t.shape.begin(), t.shape.end()), it->second.shape);
      EXPECT_EQ(to_string(t.data), it->second.bytes) << name << " " << t.name;
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data.data()) % 64, 0u)
          << "tensor not 64-byte aligned";
    }
  }
}

TEST(SplitFill, LargeAdapterFilledByTwoWorkersHasTheFileBytes) {
  // >= 8 MiB: the fill is split across both workers, each writing its own
  // tensors and padding; the result must be byte-identical to the file.
  Daemon daemon({.budget_bytes = 256ull << 20});
  const std::string dir = daemon.add_adapter(
      "big", {.rank = 64,
              .layers = 24,
              .hidden = 2048,
              .dtype = layout::DType::BF16,
              .target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"}});  // 48 MiB
  const auto expected = read_file_tensors(dir + "/adapter_model.safetensors");
  Client client = daemon.connect();
  auto lease = client.acquire("big");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  ASSERT_EQ(lease->tensors().size(), expected.size());
  for (const auto& t : lease->tensors()) {
    ASSERT_EQ(to_string(t.data), expected.at(std::string(t.name)).bytes) << t.name;
  }
  EXPECT_GE(lease->bytes().size(), 48ull << 20);
}

TEST_F(EndToEnd, ViewsAreReadOnly) {
  daemon_.add_adapter("ro", {});
  Client client = daemon_.connect();
  auto lease = client.acquire("ro");
  ASSERT_TRUE(lease.ok());
  // A write through the view must fault: the arena is mapped PROT_READ.
  const pid_t child = ::fork();
  if (child == 0) {
    auto* p = const_cast<std::byte*>(lease->tensors()[0].data.data());
    *p = std::byte{1};
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
}

// Client::arena() is the mapping every view lies in (the Python binding
// gives a lease's offset in it), and server() the daemon's HELLO version.
TEST_F(EndToEnd, ArenaHoldsEveryViewAndServerNamesTheDaemon) {
  daemon_.add_adapter("in-arena", {});
  Client client = daemon_.connect();
  auto lease = client.acquire("in-arena");
  ASSERT_TRUE(lease.ok());
  const auto arena = client.arena();
  EXPECT_EQ(arena.size(), client.arena_bytes());
  const auto bytes = lease->bytes();
  EXPECT_GE(bytes.data(), arena.data());
  EXPECT_LE(bytes.data() + bytes.size(), arena.data() + arena.size());
  for (const auto& t : lease->tensors()) {
    EXPECT_GE(t.data.data(), bytes.data());
    EXPECT_LE(t.data.data() + t.data.size(), bytes.data() + bytes.size());
  }
  EXPECT_EQ(client.server().rfind("genomed ", 0), 0u) << client.server();
}

TEST_F(EndToEnd, GenomectlDigestMatchesSha256OfFileBytes) {
  fixture::AdapterSpec spec;
  spec.dtype = DType::BF16;
  const std::string dir = daemon_.add_adapter("digest-me", spec);
  const auto expected = read_file_tensors(dir + "/adapter_model.safetensors");
  std::string want;
  for (const auto& [name, t] : expected) {  // std::map: sorted by name
    std::string shape;
    for (std::size_t i = 0; i < t.shape.size(); ++i)
      shape += (i ? "x" : "") + std::to_string(t.shape[i]);
    want += name + " " + t.dtype + " " + shape + " " + sha256_hex(t.bytes) + "\n";
  }
  const auto r =
      run_command({binary("genomectl"), "--socket", daemon_.socket_path(), "digest", "digest-me"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want);
}

TEST_F(EndToEnd, GenomectlAcquirePrintsTensorTable) {
  daemon_.add_adapter("table", {});
  const auto r =
      run_command({binary("genomectl"), "--socket", daemon_.socket_path(), "acquire", "table"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(
      r.out.find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight  F16       8x64"),
      std::string::npos)
      << r.out;
}

TEST_F(EndToEnd, GenomectlErrorsAreTypedOnStderr) {
  const auto r =
      run_command({binary("genomectl"), "--socket", daemon_.socket_path(), "acquire", "missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: not_found: ", 0), 0u) << r.err;
  const auto no_daemon =
      run_command({binary("genomectl"), "--socket", daemon_.dir() + "/none.sock", "list"});
  EXPECT_EQ(no_daemon.exit_code, 1);
  EXPECT_EQ(no_daemon.err.rfind("error: not_connected: ", 0), 0u) << no_daemon.err;
}

TEST_F(EndToEnd, StatsJsonHasTheDocumentedKeys) {
  const auto r =
      run_command({binary("genomectl"), "--socket", daemon_.socket_path(), "stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stats = nlohmann::json::parse(r.out);
  for (const char* key :
       {"loads_started", "loads_completed", "loads_failed", "hits", "misses", "evictions",
        "bytes_resident", "budget_bytes", "leases_active", "workers_alive", "worker_restarts"}) {
    EXPECT_TRUE(stats.contains(key)) << key;
  }
  EXPECT_EQ(stats["workers_alive"], 2);
  EXPECT_EQ(stats["budget_bytes"], 64u << 20);
}

TEST_F(EndToEnd, BatchAcquireLeasesEveryNameInOneRequest) {
  for (int i = 0; i < 4; ++i) daemon_.add_adapter("batch" + std::to_string(i), {.seed = 7u + i});
  Client client = daemon_.connect();
  auto leases = client.acquire(std::vector<std::string>{"batch0", "batch1", "batch2", "batch3"});
  ASSERT_TRUE(leases.ok()) << leases.status().to_string();
  ASSERT_EQ(leases->size(), 4u);
  EXPECT_EQ((*leases)[2].name(), "batch2");
  EXPECT_EQ(daemon_.stat("leases_active"), 4u);
  // All or nothing: one bad name fails the batch and leaves no lease behind.
  auto bad = client.acquire(std::vector<std::string>{"batch0", "nope"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), Errc::not_found);
  EXPECT_NE(bad.status().message().find("'nope'"), std::string::npos);
  EXPECT_EQ(daemon_.stat("leases_active"), 4u);
  leases->clear();
  EXPECT_TRUE(eventually([&] { return daemon_.stat("leases_active") == 0; }));
}

TEST_F(EndToEnd, UnloadWithLeaseDrainsThenFrees) {
  daemon_.add_adapter("drain", {});
  Client client = daemon_.connect();
  auto lease = client.acquire("drain");
  ASSERT_TRUE(lease.ok());
  auto unloaded = client.unload("drain");
  ASSERT_TRUE(unloaded.ok());
  EXPECT_EQ(unloaded->outcome, "draining");
  EXPECT_EQ(unloaded->leases, 1u);
  // No new leases while draining; the old view stays valid and unchanged.
  auto again = client.acquire("drain");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.code(), Errc::draining);
  // The draining copy is still readable through the lease.
  const auto expected = read_file_tensors(daemon_.root() + "/drain/adapter_model.safetensors");
  for (const auto& t : lease->tensors())
    EXPECT_EQ(to_string(t.data), expected.at(std::string(t.name)).bytes);
  lease->release();
  EXPECT_TRUE(lease->tensors().empty());  // no views into memory the daemon may reuse
  EXPECT_TRUE(lease->bytes().empty());
  EXPECT_EQ(lease->find("anything"), nullptr);
  ASSERT_TRUE(eventually([&] { return daemon_.stat("bytes_resident") == 0; }));
  // Reload under the same name: a new generation, and only one copy. LIST is
  // keyed by name and would show one entry even with two copies resident:
  // the budget's bytes tell.
  auto reloaded = client.acquire("drain");
  ASSERT_TRUE(reloaded.ok());
  EXPECT_GT(reloaded->generation(), lease->generation());
  const std::uint64_t one_copy = (reloaded->bytes().size() + 4095) / 4096 * 4096;
  EXPECT_EQ(daemon_.stat("bytes_resident"), one_copy);
  auto list = client.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "ready");
  EXPECT_EQ(daemon_.stat("loads_completed"), 2u);
}

TEST_F(EndToEnd, ReloadOfAChangedFileShowsTheNewBytesNotACachedTable) {
  // The client caches parsed tensor tables per (generation, range); a reload
  // may land in the same range, and must still show the new file.
  const std::string dir = daemon_.add_adapter("changing", {.seed = 1});
  Client client = daemon_.connect();
  std::uint64_t first_generation = 0;
  {
    auto lease = client.acquire("changing");
    ASSERT_TRUE(lease.ok());
    first_generation = lease->generation();
  }
  ASSERT_TRUE(eventually([&] { return client.unload("changing").ok(); }));
  daemon_.add_adapter("changing", {.rank = 4, .seed = 2});  // a different layout and bytes
  const auto expected = read_file_tensors(dir + "/adapter_model.safetensors");
  auto lease = client.acquire("changing");
  ASSERT_TRUE(lease.ok());
  EXPECT_NE(lease->generation(), first_generation);
  EXPECT_EQ(lease->lora_rank(), 4u);
  for (const auto& t : lease->tensors())
    EXPECT_EQ(to_string(t.data), expected.at(std::string(t.name)).bytes);
}

TEST_F(EndToEnd, LeasesOnOneCopyShareItsTensorTable) {
  daemon_.add_adapter("shared", {});
  Client client = daemon_.connect_without_slots();  // two leases granted by the daemon
  auto a = client.acquire("shared");
  auto b = client.acquire("shared");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->id(), b->id());
  EXPECT_EQ(a->tensors().data(), b->tensors().data());  // parsed once
  EXPECT_EQ(a->tensors()[0].data.data(), b->tensors()[0].data.data());
}

TEST_F(EndToEnd, DoubleUnloadIsATypedError) {
  daemon_.add_adapter("twice", {});
  Client client = daemon_.connect();
  ASSERT_TRUE(client.load("twice").ok());
  auto first = client.unload("twice");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->outcome, "freed");
  auto second = client.unload("twice");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.code(), Errc::not_loaded);
}

TEST_F(EndToEnd, LoadThenAcquireIsAHit) {
  daemon_.add_adapter("warm", {});
  Client client = daemon_.connect();
  auto loaded = client.load("warm");
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->was_resident);
  auto again = client.load("warm");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->was_resident);
  const auto hits = daemon_.stat("hits");
  ASSERT_TRUE(client.acquire("warm").ok());
  EXPECT_EQ(daemon_.stat("hits"), hits + 1);
  EXPECT_EQ(daemon_.stat("loads_started"), 1u);
}

TEST(Lifecycle, SigtermStopsCleanlyAndRemovesSocketAndWorkers) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  {
    Client client = daemon.connect();
    ASSERT_TRUE(client.acquire("a").ok());
  }
  const std::string socket = daemon.socket_path();
  const int status = daemon.stop();
  ASSERT_TRUE(WIFEXITED(status)) << daemon.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << daemon.log();
  struct stat st {};
  EXPECT_NE(::stat(socket.c_str(), &st), 0) << "socket file left behind";
  EXPECT_NE(daemon.log().find("stopped cleanly"), std::string::npos);
}

TEST(Lifecycle, MissingWorkerExecutableFailsStartUp) {
  const ScratchDir scratch("genomed-root");
  const std::string& root = scratch.path();
  const auto r = run_command({binary("genomed"), "--socket", root + "/s.sock", "--root", root,
                              "--budget", "8M", "--worker-path", root + "/no-such-worker"});
  EXPECT_EQ(r.exit_code, 1);
  // Typed as the host refusing a resource, not as a bug, and it names the flag.
  EXPECT_NE(r.err.find("environment: cannot start worker '" + root + "/no-such-worker'"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("(check --worker-path)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
}

// A socket path genomed cannot bind (its directory does not exist, or is a
// file) stops the start with `environment` naming the path and the OS error.
TEST(Lifecycle, UnusableSocketPathFailsStartUpWithEnvironment) {
  const ScratchDir scratch("genomed-root");
  const std::string& root = scratch.path();
  const std::string file = root + "/plain-file";
  std::ofstream(file) << "not a directory";
  for (const auto& [socket, why] :
       {std::pair{root + "/no-such-dir/s.sock", "No such file or directory"},
        std::pair{file + "/s.sock", "Not a directory"}}) {
    const auto r = run_command({binary("genomed"), "--socket", socket, "--root", root, "--budget",
                                "8M", "--workers", "1"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("environment: cannot listen on '" + socket + "': " + why),
              std::string::npos)
        << r.err;
  }
}

TEST(Lifecycle, HelpIsTrueAndBadFlagsFailWithExit2) {
  const auto help = run_command({binary("genomed"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag :
       {"--socket", "--root", "--budget", "--workers", "--config", "--log-level"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  const auto bad = run_command(
      {binary("genomed"), "--socket", "/tmp/x.sock", "--root", "/tmp", "--budget", "lots"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--budget"), std::string::npos) << bad.err;
  if (GENOMED_FAULT_INJECTION_BUILT) {
    const auto fault = run_command({binary("genomed"), "--socket", "/tmp/x.sock", "--root", "/tmp",
                                    "--worker-fault", "explode@probe"});
    EXPECT_EQ(fault.exit_code, 2);
    EXPECT_NE(fault.err.find("unknown action"), std::string::npos) << fault.err;
  }
}

// Fault injection is test-only: a build without GENOMED_FAULT_INJECTION
// refuses it in the daemon and in the worker (exit 2, saying how to build
// with it), and --help tells which build this is.
TEST(Lifecycle, WorkerFaultNeedsAFaultInjectionBuild) {
  const auto help = run_command({binary("genomed"), "--help"});
  EXPECT_NE(help.out.find(GENOMED_FAULT_INJECTION_BUILT ? "(this build has it)"
                                                        : "(this build does not)"),
            std::string::npos)
      << help.out;
  if (GENOMED_FAULT_INJECTION_BUILT) return;  // the fault tests use it
  const auto daemon = run_command({binary("genomed"), "--socket", "/tmp/x.sock", "--root", "/tmp",
                                   "--worker-fault", "crash@probe"});
  EXPECT_EQ(daemon.exit_code, 2);
  EXPECT_NE(daemon.err.find("--worker-fault: fault injection is not compiled into this build"),
            std::string::npos)
      << daemon.err;
  EXPECT_NE(daemon.err.find("-DGENOMED_FAULT_INJECTION=ON"), std::string::npos) << daemon.err;
  const auto worker = run_command(
      {binary("genome-worker"), "--ipc-fd", "0", "--fault", "crash@probe"});
  EXPECT_EQ(worker.exit_code, 2);
  EXPECT_NE(worker.err.find("-DGENOMED_FAULT_INJECTION=ON"), std::string::npos) << worker.err;
}

}  // namespace
}  // namespace genomed::testing
