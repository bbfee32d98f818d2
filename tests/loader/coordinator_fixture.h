// The coordinator under test: on a fake clock (FakeWaitClock, advanced by
// hand) and an in-process job runner (FakeRunner), over adapters written to a
// temporary root. Shared by the coordinator's unit tests.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "loader/coordinator.h"
#include "tests/loader/fake_clock.h"
#include "tests/loader/fake_runner.h"
#include "tools/fixture/fixture.h"
#include "tools/testkit/scratch_dir.h"

namespace genomed::testing {

using loader::Coordinator;
using loader::CoordinatorOptions;
using loader::NameResolver;

// A call run on its own thread, whose result the test reads once it is done.
template <class T>
class Async {
 public:
  template <class F>
  explicit Async(F f)
      : thread_([this, f] {
          T r = f();
          std::lock_guard g(mu_);
          result_ = std::move(r);
          done_ = true;
        }) {}
  ~Async() {
    if (thread_.joinable()) thread_.join();
  }
  bool done() {
    std::lock_guard g(mu_);
    return done_;
  }
  T& get() {
    if (thread_.joinable()) thread_.join();
    return *result_;
  }

 private:
  std::mutex mu_;
  bool done_ = false;
  std::optional<T> result_;
  std::thread thread_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (coordinator_) coordinator_->shutdown();
  }

  // Writes adapter `name` under the root: rank 8 unless told (the footprint()
  // of a rank-16 one is about twice as large).
  void add(const std::string& name, std::uint64_t seed, std::uint32_t rank = 8) {
    ASSERT_TRUE(fixture::write_adapter(root_ + "/" + name,
                                       {.rank = rank, .layers = 2, .hidden = 256, .seed = seed})
                    .ok());
  }
  // Bytes one of those adapters occupies in the arena (page-rounded).
  std::uint64_t footprint() {
    add("probe-only", 99);
    const layout::AdapterPaths paths{root_ + "/probe-only/adapter_config.json",
                                     root_ + "/probe-only/adapter_model.safetensors"};
    auto files = format::open_adapter_files(paths);
    EXPECT_TRUE(files.ok());
    auto probe = format::probe_adapter(paths, *files);
    EXPECT_TRUE(probe.ok());
    return (probe->layout.total_bytes + 4095) / 4096 * 4096;
  }
  void start(std::uint64_t budget, CoordinatorOptions options = {}) {
    runner_ = std::make_unique<FakeRunner>(budget);
    auto resolver = NameResolver::create({root_});
    ASSERT_TRUE(resolver.ok()) << resolver.status().to_string();
    resolver_ = std::make_unique<NameResolver>(std::move(*resolver));
    coordinator_ =
        std::make_unique<Coordinator>(options, *resolver_, *runner_, runner_->arena(), clock_);
  }
  // The set-up most tests share: adapters `names` (each seeded by its first
  // letter) and a coordinator whose budget holds `room_for` of them. Returns
  // the footprint of one, the unit the test counts room in.
  std::uint64_t start_with(std::initializer_list<const char*> names, std::uint64_t room_for,
                           CoordinatorOptions options = {}) {
    const std::uint64_t one = footprint();
    for (const char* name : names) add(name, static_cast<unsigned char>(name[0]));
    start(room_for * one, options);
    return one;
  }
  // Whether LIST shows `name` (resident or loading).
  bool resident(const std::string& name) {
    for (const auto& a : coordinator_->list().adapters) {
      if (a.name == name) return true;
    }
    return false;
  }
  std::uint64_t stat(const std::string& key) {
    for (const auto& [k, v] : coordinator_->stats().values) {
      if (k == key) return std::get<std::uint64_t>(v);
    }
    ADD_FAILURE() << "no stat " << key;
    return 0;
  }

  // Declared first, destroyed last: after the coordinator and its runner.
  testkit::ScratchDir scratch_{"genomed-coordinator-test"};
  std::string root_ = scratch_.path();
  FakeWaitClock clock_;
  std::unique_ptr<FakeRunner> runner_;
  std::unique_ptr<NameResolver> resolver_;
  std::unique_ptr<Coordinator> coordinator_;
};

}  // namespace genomed::testing
