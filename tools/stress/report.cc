#include "tools/stress/report.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

namespace genomed::stress {
namespace {

using Clock = std::chrono::steady_clock;

std::string errors_text(const std::array<std::atomic<std::uint64_t>, kCodes>& errors) {
  std::string out;
  for (std::size_t i = 0; i < kCodes; ++i) {
    const auto n = errors[i].load();
    if (n == 0) continue;
    out += (out.empty() ? "" : " ") + std::string(errc_name(static_cast<Errc>(i))) + "=" +
           std::to_string(n);
  }
  return out.empty() ? "-" : out;
}

std::string ms(double us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", us / 1000.0);
  return buf;
}

std::uint64_t chaos_total(const Tally& t) {
  std::uint64_t n = 0;
  for (int c = 0; c < kChaos; ++c) n += t.chaos_count(static_cast<Chaos>(c));
  return n;
}

}  // namespace

StatusLine::StatusLine(const Options& options, const Tally& tally)
    : options_(options), tally_(tally) {
  if (::isatty(2)) thread_ = std::thread([this] { loop(); });
}

StatusLine::~StatusLine() {
  stop_.store(true);
  if (thread_.joinable()) {
    thread_.join();
    std::fprintf(stderr, "\r\033[K");
  }
}

void StatusLine::loop() {
  const auto t0 = Clock::now();
  auto last_t = t0;
  std::uint64_t last_ops = 0;
  while (!stop_.load()) {
    // The refresh period of a display, not a synchronisation.
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.status_interval_ms));
    const auto now = Clock::now();
    const std::uint64_t ops = tally_.ops_total.load();
    const double rate = static_cast<double>(ops - last_ops) /
                        std::chrono::duration<double>(now - last_t).count();
    last_t = now;
    last_ops = ops;
    const auto& acq = tally_.op(Op::acquire);
    std::array<std::atomic<std::uint64_t>, kCodes> errors{};
    for (int o = 0; o < kOps; ++o)
      for (std::size_t i = 0; i < kCodes; ++i)
        errors[i] += tally_.op(static_cast<Op>(o)).errors[i].load();
    std::fprintf(stderr,
                 "\r\033[K%5.0fs  %8.0f ops/s  acquire p50 %s ms p99 %s ms  leases %lld  chaos %llu  "
                 "errors: %s  FAILURES %llu",
                 std::chrono::duration<double>(now - t0).count(), rate,
                 ms(acq.latency.quantile(0.5)).c_str(), ms(acq.latency.quantile(0.99)).c_str(),
                 static_cast<long long>(tally_.leases_held.load()),
                 static_cast<unsigned long long>(chaos_total(tally_)), errors_text(errors).c_str(),
                 static_cast<unsigned long long>(tally_.failures_total()));
    std::fflush(stderr);
  }
}

void print_report(std::FILE* out, const Options& options, const Tally& tally,
                  const RunSummary& s) {
  std::fprintf(out, "genome-stress: %.1f s, %d clients, seed %llu, verify %s, chaos %s\n",
               s.seconds, options.clients, static_cast<unsigned long long>(options.seed),
               options.verify == VerifyMode::full ? "full" : "sample",
               s.chaos_ran.any() ? s.chaos_ran.to_string().c_str() : "off");
  std::fprintf(out, "target: %s\n", s.target.c_str());
  std::fprintf(out, "allowed errors: %s\n\n", s.allowed.c_str());
  std::fprintf(out, "%-12s %10s %10s %9s %9s %9s  %s\n", "operation", "count", "ok", "p50 ms",
               "p99 ms", "max ms", "errors by code");
  for (int o = 0; o < kOps; ++o) {
    const OpTally& t = tally.op(static_cast<Op>(o));
    if (t.latency.count() == 0) continue;
    std::fprintf(out, "%-12s %10llu %10llu %9s %9s %9s  %s\n", op_name(static_cast<Op>(o)),
                 static_cast<unsigned long long>(t.latency.count()),
                 static_cast<unsigned long long>(t.ok.load()), ms(t.latency.quantile(0.5)).c_str(),
                 ms(t.latency.quantile(0.99)).c_str(),
                 ms(static_cast<double>(t.latency.max())).c_str(), errors_text(t.errors).c_str());
  }
  std::fprintf(out, "\nchaos:");
  for (int c = 0; c < kChaos; ++c)
    std::fprintf(out, "%s %s %llu", c ? "," : "", chaos_name(static_cast<Chaos>(c)),
                 static_cast<unsigned long long>(tally.chaos_count(static_cast<Chaos>(c))));
  std::fprintf(out, "\n");
  if (tally.chaos_count(Chaos::bad_file) > 0)
    std::fprintf(out, "bad adapters refused by code: %s\n", errors_text(tally.bad_refused).c_str());
  for (const auto& k : s.chaos_skipped) std::fprintf(out, "chaos skipped: %s\n", k.c_str());
  for (const auto& n : s.notes) std::fprintf(out, "note: %s\n", n.c_str());
  std::fprintf(out, "verified: %llu leases, %llu tensors, %.1f MiB; wrong bytes: %llu\n\n",
               static_cast<unsigned long long>(tally.leases_verified.load()),
               static_cast<unsigned long long>(tally.tensors_verified.load()),
               static_cast<double>(tally.bytes_verified.load()) / (1 << 20),
               static_cast<unsigned long long>(tally.failures(Failure::wrong_bytes)));
  std::fprintf(out, "invariants:\n");
  for (const auto& c : s.checks)
    std::fprintf(out, "  [%s] %-44s %llu checks%s%s\n", c.ok() ? " ok " : "FAIL", c.name.c_str(),
                 static_cast<unsigned long long>(c.checked), c.detail.empty() ? "" : "; ",
                 c.detail.c_str());
  if (tally.failures_total() > 0) {
    std::fprintf(out, "\nfailures:");
    for (int f = 0; f < kFailures; ++f) {
      const auto n = tally.failures(static_cast<Failure>(f));
      if (n) std::fprintf(out, " %s=%llu", failure_name(static_cast<Failure>(f)),
                          static_cast<unsigned long long>(n));
    }
    std::fprintf(out, "\n");
    // A dead daemon first: the lost connections that follow are its symptoms.
    auto details = tally.failure_details();
    std::stable_partition(details.begin(), details.end(),
                          [](const std::string& d) { return d.rfind("daemon:", 0) == 0; });
    for (const auto& d : details) std::fprintf(out, "  %s\n", d.c_str());
  }
  if (!s.kept_dir.empty())
    std::fprintf(out, "\nscratch directory kept (daemon log: genomed.log): %s\n", s.kept_dir.c_str());
  std::fprintf(out, "\nverdict: %s\nrepeat: %s\n", s.passed ? "PASS" : "FAIL", s.repeat.c_str());
}

bool write_json(const std::string& path, const Options& options, const Tally& tally,
                const RunSummary& s) {
  using nlohmann::json;
  json ops = json::object();
  for (int o = 0; o < kOps; ++o) {
    const OpTally& t = tally.op(static_cast<Op>(o));
    if (t.latency.count() == 0) continue;
    json errors = json::object();
    for (std::size_t i = 0; i < kCodes; ++i)
      if (t.errors[i].load()) errors[std::string(errc_name(static_cast<Errc>(i)))] = t.errors[i].load();
    ops[op_name(static_cast<Op>(o))] = {{"count", t.latency.count()},
                                        {"ok", t.ok.load()},
                                        {"p50_ms", t.latency.quantile(0.5) / 1000},
                                        {"p99_ms", t.latency.quantile(0.99) / 1000},
                                        {"max_ms", static_cast<double>(t.latency.max()) / 1000},
                                        {"errors", errors}};
  }
  json chaos = json::object();
  for (int c = 0; c < kChaos; ++c)
    chaos[chaos_name(static_cast<Chaos>(c))] = tally.chaos_count(static_cast<Chaos>(c));
  json refused = json::object();
  for (std::size_t i = 0; i < kCodes; ++i)
    if (tally.bad_refused[i].load())
      refused[std::string(errc_name(static_cast<Errc>(i)))] = tally.bad_refused[i].load();
  json failures = json::object();
  for (int f = 0; f < kFailures; ++f)
    failures[failure_name(static_cast<Failure>(f))] = tally.failures(static_cast<Failure>(f));
  json checks = json::array();
  for (const auto& c : s.checks)
    checks.push_back({{"name", c.name}, {"ok", c.ok()}, {"checks", c.checked},
                      {"violations", c.violations}, {"detail", c.detail}});
  const json doc = {{"verdict", s.passed ? "PASS" : "FAIL"},
                    {"seconds", s.seconds},
                    {"seed", options.seed},
                    {"clients", options.clients},
                    {"chaos", s.chaos_ran.to_string()},
                    {"chaos_skipped", s.chaos_skipped},
                    {"target", s.target},
                    {"allowed_errors", s.allowed},
                    {"operations", ops},
                    {"chaos_events", chaos},
                    {"bad_adapters_refused", refused},
                    {"verified", {{"leases", tally.leases_verified.load()},
                                  {"tensors", tally.tensors_verified.load()},
                                  {"bytes", tally.bytes_verified.load()}}},
                    {"failures", failures},
                    {"failure_details", tally.failure_details()},
                    {"invariants", checks},
                    {"notes", s.notes},
                    {"repeat", s.repeat}};
  std::ofstream out(path);
  out << doc.dump(2) << "\n";
  out.close();
  if (!out) {
    std::fprintf(stderr, "genome-stress: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

}  // namespace genomed::stress
