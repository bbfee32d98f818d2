// genome-stress: drives a genomed with many clients and optional chaos, and
// says at the end whether anything was lost or wrong (docs/stress.md).
// A client like any other: every operation goes through the public client
// library (include/genomed/client.h).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "tools/stress/chaos.h"
#include "tools/stress/corpus.h"
#include "tools/stress/error_policy.h"
#include "tools/stress/invariants.h"
#include "tools/stress/options.h"
#include "tools/stress/report.h"
#include "tools/stress/resources.h"
#include "tools/stress/scratch_root.h"
#include "tools/stress/target.h"
#include "tools/stress/victim.h"
#include "tools/stress/workload.h"

namespace genomed::stress {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t interrupted = 0;
void on_interrupt(int) { interrupted = 1; }

std::string self_exe() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).string();
}

// The adapters of `root` that take part: --adapters, or every directory
// holding a weights file.
std::vector<std::string> adapter_names(const std::string& root, const std::vector<std::string>& chosen) {
  if (!chosen.empty()) return chosen;
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (fs::exists(e.path() / "adapter_model.safetensors")) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

Status build_corpus(const Options& o, ScratchRoot* scratch, Corpus& corpus) {
  std::string served_root = o.root;
  std::vector<std::string> names;
  if (scratch != nullptr) {
    served_root = scratch->root();
    if (!o.root.empty()) {
      names = adapter_names(o.root, o.adapters);
      for (const auto& n : names)
        if (Status s = scratch->copy_adapter(o.root, n); !s.ok()) return s;
    } else {
      auto generated = scratch->generate(o.generate, o.seed);
      if (!generated) return generated.status();
      names = *generated;
    }
  } else {
    names = adapter_names(o.root, o.adapters);
  }
  for (const auto& n : names) {
    auto truth = read_truth(served_root + "/" + n + "/adapter_model.safetensors");
    if (!truth) return truth.status();
    corpus.add_good({n, {std::move(*truth)}, {}});
  }
  if (scratch != nullptr && o.chaos.writes_files()) {
    for (int i = 0; i < o.mutable_adapters; ++i) {
      auto m = scratch->make_mutable(i, 3, o.seed);
      if (!m) return m.status();
      corpus.add_good(std::move(*m));
    }
  }
  if (!o.bad_root.empty())
    for (const auto& n : adapter_names(o.bad_root, {})) corpus.add_bad(n);
  if (corpus.good().empty())
    return Status(Errc::not_found, "no adapters to use under " + served_root +
                                       " (a directory per adapter with adapter_model.safetensors)");
  return Status::Ok();
}

int run(Options o) {
  if (!o.seed_given) {
    o.seed = std::random_device{}() ^
             static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);

  Tally tally;
  Corpus corpus;
  std::optional<ScratchRoot> scratch;
  if (o.spawn) {
    auto created = ScratchRoot::create();
    if (!created) {
      std::fprintf(stderr, "genome-stress: %s\n", created.status().to_string().c_str());
      return 1;
    }
    scratch.emplace(std::move(*created));
  }
  if (Status s = build_corpus(o, scratch ? &*scratch : nullptr, corpus); !s.ok()) {
    std::fprintf(stderr, "genome-stress: %s\n", s.to_string().c_str());
    if (scratch) scratch->remove();
    return 1;
  }
  auto target = o.spawn ? Target::spawn(o, *scratch) : Target::attach(o);
  if (!target) {
    std::fprintf(stderr, "genome-stress: cannot %s the daemon: %s\n",
                 o.spawn ? "start" : "reach", target.status().to_string().c_str());
    if (scratch) std::fprintf(stderr, "scratch directory kept: %s\n", scratch->dir().c_str());
    return 1;
  }
  DaemonFacts& facts = target->facts();

  ClientOptions mopts;
  mopts.client_name = "genome-stress monitor";
  mopts.request_timeout = o.op_deadline;
  auto monitor = Client::connect(facts.socket, mopts);
  if (!monitor) {
    std::fprintf(stderr, "genome-stress: %s\n", monitor.status().to_string().c_str());
    return 1;
  }
  std::optional<Client> monitor_client(std::move(*monitor));
  if (facts.pid > 0) facts.baseline = footprint_of(facts.pid);

  EffectiveChaos plan = effective_chaos(o, facts, corpus, scratch.has_value());
  const ErrorPolicy policy(o, plan.rates);
  const Verifier verifier(corpus, o, tally);
  Invariants invariants(o, tally, facts);
  Workload workload(o, facts.socket, corpus, verifier, policy, invariants, tally);
  ChaosMonkey chaos(o, facts, corpus, scratch ? &*scratch : nullptr, std::move(plan), policy, tally,
                    self_exe());

  const auto t0 = Clock::now();
  {
    StatusLine status(o, tally);
    workload.start();
    chaos.start();
    // The monitor: a sample of stats and list every second (a bounded wait
    // for the end of the run, not a synchronisation).
    while (!interrupted) {
      const auto elapsed = Clock::now() - t0;
      if (o.ops ? workload.done() : elapsed >= o.duration) break;
      if (workload.done()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(o.ops ? 100 : 250));
      static auto next_sample = t0;
      if (Clock::now() < next_sample) continue;
      next_sample = Clock::now() + std::chrono::seconds(1);
      if (!target->alive()) {
        tally.fail(Failure::daemon, "the daemon died during the run");
        break;
      }
      if (!monitor_client) {
        if (auto c = Client::connect(facts.socket, mopts)) monitor_client.emplace(std::move(*c));
        continue;
      }
      auto stats = monitor_client->stats();
      auto list = monitor_client->list();
      if (stats && list) {
        invariants.sample(*stats, *list);
      } else {
        const Status s = stats ? list.status() : stats.status();
        if (policy.record(Op::stats, s, *monitor_client, tally, "(monitor)")) monitor_client.reset();
      }
    }
    workload.stop();
    chaos.stop();
    workload.join();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  monitor_client.reset();  // the quiesce checks open their own, one connection as at the baseline

  std::mt19937_64 rng(o.seed ^ 0x9e5ceull);
  if (target->alive()) invariants.quiesce(corpus, verifier, policy, rng);
  else tally.fail(Failure::daemon, "the daemon is gone at the end of the run");

  RunSummary summary;
  summary.seconds = seconds;
  summary.target = target->spawned() ? "spawned: " + target->command() : "attached: " + facts.socket;
  summary.chaos_ran = chaos.rates();
  summary.chaos_skipped = chaos.skipped();
  if (facts.pid <= 0) summary.notes.push_back("daemon not visible in /proc here: resource checks skipped");
  if (o.shared) summary.notes.push_back("--shared: exact lease and resource checks skipped");
  if (interrupted) summary.notes.push_back("interrupted: the run ended early");
  if (!interrupted) tally.fail_if_nothing_ran(seconds);
  if (target->spawned()) {
    if (Status s = target->stop(); !s.ok()) tally.fail(Failure::daemon, s.message());
  }
  summary.checks = invariants.results();
  summary.allowed = policy.allowed_names();
  summary.repeat = repeat_command(o);
  summary.passed = tally.failures_total() == 0 && !interrupted;
  if (scratch) {
    if (summary.passed && !o.keep) scratch->remove();
    else summary.kept_dir = scratch->dir();
  }
  print_report(stdout, o, tally, summary);
  std::fflush(stdout);
  if (!o.json_path.empty() && !write_json(o.json_path, o, tally, summary)) return 1;
  return summary.passed ? 0 : 1;
}

}  // namespace
}  // namespace genomed::stress

int main(int argc, char** argv) {
  using namespace genomed::stress;
  auto options = parse_options(argc, argv);
  if (!options) {
    std::fprintf(stderr, "genome-stress: %s\n(see genome-stress --help)\n",
                 options.status().message().c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (options->victim) return victim_main(*options);
  return run(std::move(*options));
}
