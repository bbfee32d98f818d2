// genomed: the supervisor. Wires the arena, the worker pool, the coordinator
// and the socket server together, serves until SIGINT/SIGTERM, then stops in
// the reverse order: socket closed and removed (no new clients), the drain
// (leases held may end, up to --drain-timeout: loader/drain.h), waiters
// failed, workers ended, connections closed (their leases dropped), arena
// unmapped.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>

#include "cache/arena.h"
#include "common/huge_pages.h"
#include "common/run_clock.h"
#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/arena_owner.h"
#include "loader/client_log.h"
#include "loader/config.h"
#include "loader/coordinator.h"
#include "loader/drain.h"
#include "loader/file_lease.h"
#include "loader/metrics_exporter.h"
#include "loader/log_format.h"
#include "loader/pool.h"
#include "loader/server.h"
#include "loader/systemd_notify.h"

namespace {

constexpr const char* kVersion = "genomed 0.1.0";

int fail(const genomed::Status& s) {
  spdlog::critical("{}", genomed::printable(s.to_string()));
  return 1;
}

// Has a worker read --base-model now, so that a wrong directory stops
// genomed at start rather than failing every load later.
genomed::Status check_base_model(genomed::loader::Pool& pool, genomed::WaitClock& clock,
                                 const genomed::loader::DaemonConfig& config) {
  using namespace genomed;
  jobs::Job job;
  job.kind = jobs::JobKind::base_model;
  auto body = pool.run(job, clock.now() + config.coordinator.load_timeout);
  if (!body) return body.status();
  auto reply = jobs::decode_base_model_reply(*body);
  if (!reply) return reply.status();
  // model_type comes from the base model's config.json: shown escaped.
  spdlog::info("base model {}: {} weights in {} file(s){}", config.base_model, reply->weights,
               reply->files,
               reply->model_type.empty() ? "" : " (" + quote(reply->model_type) + ")");
  return Status::Ok();
}

// Every client connection holds a descriptor and costs no thread, so the
// soft descriptor limit (often 1024) would be the first to refuse clients:
// raise it to the hard limit, which needs no privilege.
void raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur != lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      spdlog::warn("cannot raise the descriptor limit from {} to {}: {}", before, lim.rlim_max,
                   std::strerror(errno));
      return;
    }
  }
  spdlog::info("descriptor limit {} (was {}; hard limit {})", lim.rlim_cur, before, lim.rlim_max);
}

std::uint64_t leases_active(const genomed::loader::Coordinator& coordinator) {
  for (const auto& [key, value] : coordinator.stats().values) {
    if (key == "leases_active") return std::get<std::uint64_t>(value);
  }
  return 0;
}

// Waits for SIGINT or SIGTERM; meanwhile reports, every summary interval,
// the client log lines held back (loader/client_log.h), so that a flood
// that stopped is still summed up.
int wait_for_stop(const sigset_t& stop_signals, genomed::loader::ClientLogSink& client_lines,
                  std::chrono::seconds summary_interval) {
  const timespec tick{static_cast<time_t>(summary_interval.count()), 0};
  for (;;) {
    const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig > 0) return sig;
    client_lines.report_held_back();
  }
}

int run(const genomed::loader::DaemonConfig& config, const sigset_t& stop_signals,
        const std::shared_ptr<genomed::loader::ConnectionCounters>& counters,
        const genomed::loader::ClientLogOptions& client_log_options,
        genomed::loader::ClientLogSink& client_lines) {
  using namespace genomed;
  raise_descriptor_limit();
  // Before any worker starts: the socket systemd passed is made close-on-exec.
  auto activated = loader::activated_socket();
  if (!activated) return fail(activated.status());
  auto resolver = loader::NameResolver::create(config.roots);
  if (!resolver) return fail(resolver.status());

  auto arena = cache::Arena::create(config.budget_bytes, "genomed-");
  if (!arena) return fail(arena.status());
  // While genomed has one thread: capabilities are per thread, and no
  // thread may keep the CAP_CHOWN this drops.
  if (const auto owner = loader::protect_arena_from_own_uid(*arena); !owner.message.empty()) {
    spdlog::log(owner.protected_from_own_uid ? spdlog::level::info : spdlog::level::warn, "{}",
                printable(owner.message));
  }

  // Before the first load: lets go of the read leases writers break
  // (loader/file_lease.h); stopped after the coordinator, the last to take one.
  auto lease_watcher = loader::LeaseBreakWatcher::start();
  if (!lease_watcher) {
    spdlog::warn("{}; loads rely on the files' timestamps alone",
                 printable(lease_watcher.status().to_string()));
  }
  // The arena's pages are reserved (create() fails now rather than SIGBUS
  // later); faulting them in, which zeroes them and collapses them into huge
  // pages, runs in the background so start-up does not wait for it. A fill
  // into a range not yet faulted is still correct, only slower.
  std::atomic<bool> stop_prefault{false};
  std::thread prefault([&] {
    const auto start = std::chrono::steady_clock::now();
    const std::uint64_t huge = arena->prefault(&stop_prefault);
    if (!stop_prefault) {
      spdlog::info(
          "arena of {} faulted in ({:.0f} ms), {} of it in 2 MiB pages{}",
          format_size(arena->size()),
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count(),
          format_size(huge),
          huge > 0 || huge_pages_collapsible()
              ? ""
              : " (this kernel collapses none: shmem_enabled deny, or before Linux 6.1)");
    }
  });
  struct JoinPrefault {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinPrefault() {
      stop = true;
      thread.join();
    }
  } join_prefault{stop_prefault, prefault};

  loader::PoolOptions pool_options;
  pool_options.worker_executable = config.worker_path;
  pool_options.workers = config.workers;
  pool_options.arena_fd = arena->rw_fd();
  pool_options.queue_limit = config.queue_limit;
  pool_options.kill_grace = config.kill_grace;
  pool_options.restart = config.restart;
  if (!config.base_model.empty()) {
    pool_options.worker_extra_args.insert(pool_options.worker_extra_args.end(),
                                          {"--base-model", config.base_model});
  }
  if (config.worker_memory_limit > 0) {
    pool_options.worker_extra_args.insert(
        pool_options.worker_extra_args.end(),
        {"--memory-limit", std::to_string(config.worker_memory_limit)});
  }
  if (!config.direct_cold_reads) {
    pool_options.worker_extra_args.emplace_back("--buffered-cold-reads");
  }
  if (!config.worker_fault.empty()) {
    pool_options.worker_extra_args.insert(pool_options.worker_extra_args.end(),
                                          {"--fault", config.worker_fault});
  }
  // One clock for both: the coordinator's job deadlines are measured by the
  // pool. It counts only time in which genomed ran (common/run_clock.h): a
  // pause of genomed itself (SIGSTOP, a VM pause, a debugger) extends every
  // deadline instead of failing the jobs it held up. Declared before (so
  // destroyed after) everything that waits on it.
  RunClock clock(WaitClock::steady(), std::chrono::milliseconds(50), std::chrono::milliseconds(100),
                 [](RunClock::Duration uncharged) {
                   // A busy host delays the heartbeat by a little now and then: debug.
                   const auto ms =
                       std::chrono::duration_cast<std::chrono::milliseconds>(uncharged).count();
                   spdlog::log(ms >= 1000 ? spdlog::level::warn : spdlog::level::debug,
                               "genomed did not run for {} ms (stopped, paused or starved); that "
                               "time is not charged to any deadline",
                               ms);
                 });
  clock.start();
  loader::Pool pool(pool_options, clock);
  if (Status s = pool.start(); !s.ok()) return fail(s);
  if (!config.base_model.empty()) {
    if (Status s = check_base_model(pool, clock, config); !s.ok()) return fail(s);
  }

  auto histograms = std::make_shared<loader::DaemonHistograms>();
  loader::CoordinatorOptions coordinator_options = config.coordinator;
  coordinator_options.histograms = histograms;
  loader::Coordinator coordinator(coordinator_options, *resolver, pool,
                                  {arena->data(), arena->size()}, clock);
  loader::ConnectionContext ctx{&coordinator, arena->ro_fd(), arena->size(), kVersion,
                                config.connections};
  ctx.counters = counters;
  ctx.access = std::make_shared<loader::AccessControl>(config.ops.access);
  auto drain = std::make_shared<loader::Drain>(config.ops.drain_timeout);
  ctx.drain = drain;
  ctx.histograms = histograms;
  auto server = *activated >= 0 ? loader::Server::adopt(*activated, ctx)
                                : loader::Server::listen(config.socket_path, ctx);
  if (!server) return fail(server.status());
  if (Status s = (*server)->start(); !s.ok()) return fail(s);
  if (*activated >= 0) spdlog::info("socket-activated: serving on the socket systemd passed");

  // Destroyed before the coordinator and the counters its scrapes read.
  std::unique_ptr<loader::MetricsExporter> metrics;
  if (!config.ops.metrics_listen.empty()) {
    auto exporter = loader::MetricsExporter::start(
        config.ops.metrics_listen,
        [&] {
          ipc::StatsReply r = coordinator.stats();
          ctx.counters->append_to(r);
          return r;
        },
        histograms, {.request_timeout = config.ops.metrics_request_timeout});
    if (!exporter) return fail(exporter.status());
    metrics = std::move(exporter).value();
    spdlog::info("Prometheus metrics on {}", metrics->url());
  }

  std::string roots;
  for (const auto& r : resolver->roots()) roots += (roots.empty() ? "" : ", ") + r;
  spdlog::info(
      "{} serving on {} (pid {}): roots [{}], budget {}, {} worker(s), worker memory limit {}, "
      "{} cold reads, shmem huge pages {}",
      kVersion, config.socket_path, ::getpid(), roots, format_size(config.budget_bytes),
      config.workers,
      config.worker_memory_limit > 0 ? format_size(config.worker_memory_limit) : "none",
      config.direct_cold_reads ? "direct" : "buffered", shmem_huge_pages_name(shmem_huge_pages()));

  if (config.ready_fd >= 0) {
    (void)!::write(config.ready_fd, "ready\n", 6);
    ::close(config.ready_fd);
  }
  loader::notify_ready("serving on " + config.socket_path);

  const int sig = wait_for_stop(stop_signals, client_lines, client_log_options.summary_interval);
  spdlog::info("received {}; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");

  loader::notify_stopping("stopping: draining leases, then stopping workers");
  (*server)->stop_accepting();
  // Once the drain refuses new leases, the lease slots are wanted back: idle
  // ones end at once, busy ones with their client's last give-back.
  bool slots_revoked = false;
  loader::run_drain(*drain, stop_signals, [&] {
    if (drain->active() && !std::exchange(slots_revoked, true)) coordinator.revoke_lease_slots();
    return leases_active(coordinator);
  });
  coordinator.shutdown();
  (*server)->stop();
  server->reset();
  client_lines.report_held_back(/*at_stop=*/true);
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before the arena exists: no other process of genomed's uid may open
  // /proc/<genomed>/fd/N (the arena's read-write descriptor), read or write
  // /proc/<genomed>/mem, or ptrace genomed. Root (CAP_SYS_PTRACE) still can.
  // Side effect: no core dump unless fs.suid_dumpable=2 (operations.md).
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) {
    std::fprintf(stderr, "genomed: prctl(PR_SET_DUMPABLE): %s\n", std::strerror(errno));
    return 1;
  }
  auto cl = genomed::loader::parse_command_line(argc, argv);
  if (!cl) {
    // printable(): a backstop for a value a message might quote whole.
    std::fprintf(stderr, "genomed: %s\n", genomed::printable(cl.status().message()).c_str());
    return 2;
  }
  if (cl->help) {
    std::fputs(genomed::loader::usage_text().c_str(), stdout);
    return 0;
  }
  auto logger = spdlog::stderr_color_mt("genomed");
  spdlog::set_default_logger(logger);
  // Counted by connections and by the client log: STATS log_lines_suppressed.
  auto counters = std::make_shared<genomed::loader::ConnectionCounters>();
  genomed::loader::ClientLogOptions client_log_options;
  client_log_options.bytes_per_second = cl->config.ops.client_log_rate;
  // Before the level and the format are set: both reach every registered logger.
  auto client_lines = genomed::loader::install_client_log(client_log_options, counters);
  spdlog::set_level(spdlog::level::from_str(cl->config.log_level));
  genomed::loader::use_log_format(cl->config.ops.log_format);

  // Block the stop signals in every thread (the mask is inherited) so that
  // only sigwait() in main sees them; workers get a clean mask at exec.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // Likewise the signal of lease breaks, read by the LeaseBreakWatcher alone.
  genomed::loader::LeaseBreakWatcher::block_signal();
  // The ambient CAP_LEASE and CAP_CHOWN (the systemd unit's) are genomed's
  // own, for its file leases and the arena's owner (run() drops CAP_CHOWN
  // once used): cleared before any thread or worker starts, so the
  // workers, which parse untrusted files, do not inherit them at exec.
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  ::signal(SIGPIPE, SIG_IGN);
  return run(cl->config, stop_signals, counters, client_log_options, *client_lines);
}
