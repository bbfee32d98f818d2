// A JobRunner for coordinator unit tests: runs probe, fill and seal
// in-process with the worker's own parsers, through the descriptors the job
// carries, into an arena buffer of its own, and lets a test
// hold jobs of a kind until it lets them go, learn when jobs have started,
// and model a worker that ignores cancellation (a stuck one).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "jobs/job_protocol.h"
#include "loader/load_pipeline.h"
#include "loader/pool.h"
#include "worker/format/adapter_files.h"

namespace genomed::testing {

class FakeRunner final : public loader::JobRunner {
 public:
  using Kind = jobs::JobKind;

  explicit FakeRunner(std::size_t arena_bytes) : arena_(arena_bytes) {}

  loader::ArenaView arena() const { return {arena_.data(), arena_.size()}; }

  // Jobs of `kind` wait (before they run) until let go.
  void hold(Kind kind) {
    std::lock_guard g(mu_);
    held_[kind] = true;
  }
  void let_go(Kind kind) {
    std::lock_guard g(mu_);
    held_[kind] = false;
    changed_.notify_all();
  }
  // Jobs of adapter `name` (any kind) wait until let_go_adapter(name).
  void hold_adapter(const std::string& name) {
    std::lock_guard g(mu_);
    held_adapters_.insert("/" + name + "/");
  }
  void let_go_adapter(const std::string& name) {
    std::lock_guard g(mu_);
    held_adapters_.erase("/" + name + "/");
    changed_.notify_all();
  }
  // Fill replies report checksums other than those the header holds (a
  // worker that lies).
  void misreport_checksums(bool on) {
    std::lock_guard g(mu_);
    misreport_ = on;
  }
  // Held jobs no longer end when cancelled: the worker is stuck until let go.
  void ignore_cancellation(bool ignore) {
    std::lock_guard g(mu_);
    ignore_cancel_ = ignore;
  }
  // Blocks until `n` jobs of `kind` have started; false after a real 10 s.
  bool await_started(Kind kind, int n) {
    std::unique_lock g(mu_);
    return changed_.wait_for(g, std::chrono::seconds(10), [&] { return started_[kind] >= n; });
  }
  int started(Kind kind) {
    std::lock_guard g(mu_);
    return started_[kind];
  }
  // Blocks until `n` jobs have ended because they were cancelled; false
  // after a real 10 s.
  bool await_cancelled(int n) {
    std::unique_lock g(mu_);
    return changed_.wait_for(g, std::chrono::seconds(10), [&] { return cancelled_ >= n; });
  }

  Result<std::string> run(const jobs::Job& job, loader::Clock::time_point, loader::JobFate* fate,
                          std::shared_ptr<loader::CancelToken> cancel) override {
    {
      std::unique_lock g(mu_);
      ++started_[job.kind];
      changed_.notify_all();
      const auto is_cancelled = [&] { return cancel && cancel->cancelled() && !ignore_cancel_; };
      const auto adapter_held = [&] {
        return std::any_of(held_adapters_.begin(), held_adapters_.end(), [&](const std::string& h) {
          return job.paths.weights.find(h) != std::string::npos;
        });
      };
      changed_.wait(
          g, [&] { return stopped_ || is_cancelled() || (!held_[job.kind] && !adapter_held()); });
      if (stopped_) return Status(Errc::shutting_down, "runner stopped");
      if (is_cancelled()) {
        // As the pool does: the worker running it is stopped and reaped.
        ++cancelled_;
        changed_.notify_all();
        if (fate != nullptr) {
          fate->worker_died = true;
          std::promise<void> gone;
          gone.set_value();
          fate->worker_gone = gone.get_future().share();
        }
        return Status(Errc::cancelled, "cancelled");
      }
    }
    const std::span<std::byte> range(arena_.data() + job.offset, job.length);
    if (job.kind == Kind::probe) {
      GENOMED_ASSIGN_OR_RETURN(layout::ProbeResult probe,
                               format::probe_adapter(job.paths, *job.files));
      return jobs::encode_probe_reply(jobs::ProbeReply{std::move(probe)});
    }
    if (job.kind == Kind::seal) {
      layout::write_layout_header(job.layout, range);
      return jobs::encode_seal_reply();
    }
    jobs::FillReply reply{job.layout.total_bytes, {}};
    GENOMED_RETURN_IF_ERROR(
        format::fill_adapter(job.paths, *job.files, job.layout, range, job.part, &reply.checksums));
    {
      std::lock_guard g(mu_);
      if (misreport_) {
        for (auto& sum : reply.checksums) sum ^= 1;
      }
    }
    return jobs::encode_fill_reply(reply);
  }

  void cancel(loader::CancelToken& token) override {
    token.fire();
    std::lock_guard g(mu_);
    changed_.notify_all();
  }
  void stop() override {
    std::lock_guard g(mu_);
    stopped_ = true;
    changed_.notify_all();
  }
  loader::PoolStats stats() const override { return {.workers_alive = 1}; }
  int workers() const override { return 1; }

 private:
  std::vector<std::byte> arena_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<Kind, bool> held_;
  std::set<std::string> held_adapters_;
  std::map<Kind, int> started_;
  int cancelled_ = 0;
  bool ignore_cancel_ = false;
  bool misreport_ = false;
  bool stopped_ = false;
};

}  // namespace genomed::testing
