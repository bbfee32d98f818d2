// The adapter contract end to end: every lease carries the validated config
// and the module table; adapters whose tensors contradict their config are
// refused with their own code while others are served; --base-model accepts
// an adapter against its own base model and refuses it against another's;
// and a release never waits behind another thread's pending acquire.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/daemon_fixture.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;

// A base model whose q_proj/v_proj weights fit genome-fixture adapters of
// hidden size `hidden` ([hidden, hidden] each), as transformers saves one.
std::string write_base_model(const fs::path& dir, std::uint64_t hidden, std::uint32_t layers = 2) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "llama"})";
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t cursor = 0;
  for (std::uint32_t i = 0; i < layers; ++i) {
    for (const char* m : {"q_proj", "v_proj"}) {
      const std::uint64_t bytes = hidden * hidden * 2;
      header["model.layers." + std::to_string(i) + ".self_attn." + m + ".weight"] = {
          {"dtype", "F16"},
          {"shape", {hidden, hidden}},
          {"data_offsets", {cursor, cursor + bytes}}};
      cursor += bytes;
    }
  }
  EXPECT_TRUE(fixture::write_raw_safetensors((dir / "model.safetensors").string(), header.dump(),
                                             std::string(cursor, '\0'))
                  .ok());
  return dir.string();
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(AdapterContract, EveryLeaseCarriesTheConfigAndTheModuleTable) {
  Daemon daemon;
  const std::string dir = daemon.add_adapter(
      "a", {.rank = 4, .layers = 2, .hidden = 32, .dtype = layout::DType::BF16, .lora_alpha = 12});
  Client client = daemon.connect();
  auto lease = client.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();

  const AdapterConfig& config = lease->config();
  EXPECT_EQ(config.peft_type, "LORA");
  EXPECT_EQ(config.r, 4u);
  EXPECT_EQ(config.lora_alpha, 12.0);
  EXPECT_EQ(config.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(nlohmann::json::parse(config.json),
            nlohmann::json::parse(read_file(dir + "/adapter_config.json")));

  ASSERT_EQ(lease->modules().size(), 4u);  // 2 layers x q_proj, v_proj
  const LoraModule& m = lease->modules()[0];
  EXPECT_EQ(m.path, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(m.kind, ModuleKind::linear);
  ASSERT_NE(m.a, nullptr);
  ASSERT_NE(m.b, nullptr);
  EXPECT_EQ(m.a->name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(m.a, lease->find(m.a->name)) << "modules point at the lease's own views";
  EXPECT_EQ(m.b->shape[0], 32u);
  EXPECT_EQ(m.magnitude, nullptr);
  EXPECT_EQ(m.rank, 4u);
  EXPECT_EQ(m.alpha, 12.0);
  EXPECT_EQ(m.scaling, 3.0);
  EXPECT_TRUE(lease->other_tensors().empty());

  lease->release();
  EXPECT_TRUE(lease->modules().empty());
}

TEST(AdapterContract, GenomectlShowsTheModulesAndTheConfig) {
  Daemon daemon;
  const std::string dir = daemon.add_adapter("a", {.rank = 4, .layers = 1, .hidden = 32});
  auto acquire =
      run_command({binary("genomectl"), "--socket", daemon.socket_path(), "acquire", "a"});
  ASSERT_EQ(acquire.exit_code, 0) << acquire.err;
  EXPECT_NE(acquire.out.find("model.layers.0.self_attn.v_proj  linear"), std::string::npos)
      << acquire.out;
  auto config = run_command({binary("genomectl"), "--socket", daemon.socket_path(), "config", "a"});
  ASSERT_EQ(config.exit_code, 0) << config.err;
  EXPECT_EQ(nlohmann::json::parse(config.out),
            nlohmann::json::parse(read_file(dir + "/adapter_config.json")));
}

TEST(AdapterContract, ContradictionsAreRefusedWithTheirCodesWhileOthersAreServed) {
  Daemon daemon;
  // Fixture tensors have rank 4; each config below contradicts them.
  struct Case {
    const char* name;
    std::string config;
    Errc code;
  };
  const std::vector<Case> cases = {
      {"rank8", R"({"peft_type":"LORA","r":8,"lora_alpha":8,"target_modules":["q_proj"]})",
       Errc::rank_mismatch},
      {"pattern", R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],
                     "rank_pattern":{"v_proj":2}})",
       Errc::rank_mismatch},
      {"dora", R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],
                  "use_dora":true})",
       Errc::dora_mismatch},
      {"bias", R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],
                  "lora_bias":true})",
       Errc::lora_bias_mismatch},
  };
  for (const Case& c : cases) {
    const std::string dir = daemon.add_adapter(c.name, {.rank = 4, .hidden = 32});
    write_file(dir + "/adapter_config.json", c.config);
  }
  daemon.add_adapter("good", {.rank = 4, .hidden = 32});
  Client client = daemon.connect();
  for (const Case& c : cases) {
    auto r = client.acquire(c.name);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.code(), c.code) << c.name << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find("module 'model.layers."), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find(std::string(c.name) + "/adapter_model.safetensors"),
              std::string::npos)
        << r.status().message();
  }
  EXPECT_TRUE(client.acquire("good").ok());
  EXPECT_EQ(daemon.stat("worker_crashes"), 0u) << "a refused adapter is no worker failure";
}

TEST(BaseModel, AdaptersAreCheckedAgainstTheBaseModelsShapes) {
  const fs::path tmp = fs::temp_directory_path() / ("genomed-base-" + std::to_string(::getpid()));
  const std::string base = write_base_model(tmp / "base32", 32);
  Daemon daemon({.extra_args = {"--base-model", base}});
  daemon.add_adapter("fits", {.rank = 4, .layers = 2, .hidden = 32});
  daemon.add_adapter("wider", {.rank = 4, .layers = 2, .hidden = 64});
  daemon.add_adapter("deeper", {.rank = 4, .layers = 3, .hidden = 32});
  Client client = daemon.connect();
  EXPECT_TRUE(client.acquire("fits").ok());

  auto wider = client.acquire("wider");
  EXPECT_EQ(wider.code(), Errc::incompatible_base_model) << wider.status().to_string();
  for (const char* needle :
       {"module 'model.layers.0.self_attn.q_proj'", "A [4, 64]", "B [64, 4]", "is [32, 32]"}) {
    EXPECT_NE(wider.status().message().find(needle), std::string::npos)
        << needle << ": " << wider.status().message();
  }
  auto deeper = client.acquire("deeper");
  EXPECT_EQ(deeper.code(), Errc::incompatible_base_model);
  EXPECT_NE(deeper.status().message().find("'model.layers.2.self_attn.q_proj' is not in the base"),
            std::string::npos)
      << deeper.status().message();
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  fs::remove_all(tmp);
}

TEST(BaseModel, AnUnreadableBaseModelStopsGenomedAtStartNamingTheProblem) {
  const fs::path tmp =
      fs::temp_directory_path() / ("genomed-badbase-" + std::to_string(::getpid()));
  fs::create_directories(tmp / "root");
  std::ofstream(tmp / "config.json") << "{}";  // but no weights
  auto r = run_command({binary("genomed"), "--socket", (tmp / "s.sock").string(), "--root",
                        (tmp / "root").string(), "--budget", "16M", "--workers", "1",
                        "--base-model", tmp.string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("base_model_invalid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("neither model.safetensors nor model.safetensors.index.json"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(tmp / "s.sock"));
  fs::remove_all(tmp);
}

TEST(SharedClient, AReleaseNeverWaitsBehindAnotherThreadsPendingAcquire) {
  // The worker hangs in the probe of "stuck", so thread A's acquire is
  // pending until that load is cancelled.
  Daemon daemon({.load_timeout_ms = 60000, .extra_args = {"--worker-fault", "hang@probe:stuck"}});
  daemon.add_adapter("stuck", {});
  daemon.add_adapter("ready", {});
  Client shared = daemon.connect();
  auto held = shared.acquire("ready");
  ASSERT_TRUE(held.ok());

  auto pending = std::async(std::launch::async, [&] { return shared.acquire("stuck"); });
  Client control = daemon.connect();
  ASSERT_TRUE(eventually([&] {
    auto list = control.list();
    if (!list.ok()) return false;
    for (const auto& a : *list) {
      if (a.name == "stuck" && a.state == "loading") return true;
    }
    return false;
  }));
  // Thread B releases on the same client while A waits for its reply. With a
  // single request lock this blocked until A's load ended (here: never).
  auto released = std::async(std::launch::async, [&] { held->release(); });
  EXPECT_EQ(released.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "release() waited behind the pending acquire";
  EXPECT_EQ(pending.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the acquire must still be pending: the release did not wait for it";

  ASSERT_TRUE(control.unload("stuck").ok());
  auto result = pending.get();
  EXPECT_EQ(result.code(), Errc::cancelled) << result.status().to_string();
  // The release reached the daemon once the connection got to it.
  EXPECT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0; }));
}

}  // namespace
}  // namespace genomed::testing
