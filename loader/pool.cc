#include "loader/pool.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <optional>

#include "ipc/framing.h"
#include "ipc/wire.h"
#include "loader/worker_process.h"

namespace genomed::loader {

struct Pool::Pending {
  std::string frame;  // the encoded job
  std::string what;   // for logs: "probe /roots/a/adapter_model.safetensors"
  Clock::time_point deadline;
  std::promise<Result<std::string>> result;
  std::atomic<bool> worker_died{false};
  std::promise<void> retired;  // set once a dead worker of this job is reaped
};

struct Pool::Slot {
  int index = 0;
  std::thread thread;
  std::unique_ptr<WorkerProcess>
      worker;  // touched by this slot's thread only (and stop() after join)
  // Guarded by Pool::mu_:
  int busy_fd = -1;                // the worker's socket while it runs a job
  int consecutive_deaths = 0;      // reset when a job completes
  Clock::time_point next_spawn{};  // when a replacement may start
};

Pool::Pool(PoolOptions options) : options_(std::move(options)), restart_policy_(options_.restart) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Pool::~Pool() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void Pool::wake_slots(std::uint64_t n) { (void)!::write(wake_fd_, &n, sizeof n); }

bool Pool::try_spawn(Slot& slot) {
  auto spawned = WorkerProcess::spawn(
      {options_.worker_executable, options_.arena_fd, options_.worker_extra_args});
  std::lock_guard lock(mu_);
  if (!spawned) {
    spdlog::error("cannot start worker {}: {}", slot.index, spawned.status().to_string());
    ++slot.consecutive_deaths;
    slot.next_spawn = restart_policy_.on_death(slot.consecutive_deaths);
    return false;
  }
  slot.worker = std::move(spawned).value();
  ++stats_.workers_alive;
  spdlog::debug("worker {} started as pid {}", slot.index, slot.worker->pid());
  return true;
}

Status Pool::start() {
  if (wake_fd_ < 0 || stop_fd_ < 0) return Status(Errc::internal, "eventfd failed");
  for (int i = 0; i < options_.workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->index = i;
    auto spawned = WorkerProcess::spawn(
        {options_.worker_executable, options_.arena_fd, options_.worker_extra_args});
    if (!spawned) {
      stop();
      return Status(spawned.code(), spawned.status().message() + " (check --worker-path)");
    }
    slot->worker = std::move(spawned).value();
    slots_.push_back(std::move(slot));
  }
  {
    std::lock_guard lock(mu_);
    stats_.workers_alive = slots_.size();
  }
  for (auto& slot : slots_) {
    Slot* s = slot.get();
    s->thread = std::thread([this, s] { slot_main(*s); });
  }
  return Status::Ok();
}

void Pool::stop() {
  std::deque<std::shared_ptr<Pending>> orphans;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && slots_.empty()) return;
    stopping_ = true;
    orphans.swap(queue_);
    // Interrupt running jobs: their slot reads EOF and ends at once instead
    // of waiting out the job's deadline.
    for (auto& slot : slots_) {
      if (slot->busy_fd >= 0) ::shutdown(slot->busy_fd, SHUT_RDWR);
    }
  }
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);  // never read: every slot, in every state, wakes
  for (auto& p : orphans) p->result.set_value(Status(Errc::shutting_down, "genomed is stopping"));
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
    slot->worker.reset();  // closes the socket, waits briefly, SIGKILLs, reaps
  }
  slots_.clear();
  std::lock_guard lock(mu_);
  stats_.workers_alive = 0;
}

Result<std::string> Pool::run(const jobs::Job& job, Clock::time_point deadline, JobFate* fate) {
  auto pending = std::make_shared<Pending>();
  pending->frame = jobs::encode_job(job);
  pending->what =
      std::string(job.kind == jobs::JobKind::probe ? "probe " : "fill ") + job.paths.weights;
  pending->deadline = deadline;
  auto future = pending->result.get_future();
  std::shared_future<void> worker_gone = pending->retired.get_future().share();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
    if (restart_policy_.unhealthy()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          restart_policy_.unhealthy_until() - Clock::now());
      return Status(Errc::unhealthy,
                    "loader workers restarted too often; the pool resumes spawning in " +
                        std::to_string(left.count()) + " ms (cached adapters are still served)");
    }
    if (queue_.size() >= options_.queue_limit) {
      return Status(Errc::overloaded,
                    std::to_string(queue_.size()) +
                        " worker jobs are already queued (--queue-limit); retry later");
    }
    queue_.push_back(pending);
    stats_.queue_depth = queue_.size();
  }
  wake_slots(1);
  // The slot enforces the deadline on a running job; this wait covers a job
  // still queued behind busy workers. The grace lets the slot's own result
  // arrive first when it is running.
  if (future.wait_until(deadline + std::chrono::milliseconds(250)) != std::future_status::ready) {
    std::unique_lock lock(mu_);
    const auto it = std::find(queue_.begin(), queue_.end(), pending);
    if (it != queue_.end()) {
      // Still queued: withdraw it, so no worker can start it after the
      // caller has given up (and perhaps freed the range it would fill).
      queue_.erase(it);
      stats_.queue_depth = queue_.size();
      return Status(Errc::timeout,
                    "no worker became free for '" + pending->what + "' before the deadline");
    }
    // A slot runs it; the slot's own deadline ends it promptly.
  }
  auto result = future.get();
  if (fate != nullptr) {
    fate->worker_died = pending->worker_died;
    fate->worker_gone = worker_gone;
  }
  return result;
}

namespace {

// An idle worker's socket turns readable only when the worker died (EOF) or
// broke the protocol (unsolicited bytes). Checked before handing it a job,
// so a death while idle is never blamed on the next adapter.
bool worker_readable(const WorkerProcess& worker) {
  pollfd p{worker.fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

std::shared_ptr<Pool::Pending> Pool::next_job(Slot& slot) {
  for (;;) {
    std::optional<Clock::time_point> spawn_at;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return nullptr;
      if (slot.worker && !queue_.empty() && !worker_readable(*slot.worker)) {
        auto job = std::move(queue_.front());
        queue_.pop_front();
        stats_.queue_depth = queue_.size();
        // One read of the eventfd consumes every pending wake-up: pass one
        // on if jobs remain, so an idle slot does not sleep past them.
        if (!queue_.empty()) wake_slots(1);
        return job;
      }
      if (!slot.worker) {
        // A pause that began after this slot's backoff was set holds it too.
        spawn_at = restart_policy_.unhealthy()
                       ? std::max(slot.next_spawn, restart_policy_.unhealthy_until())
                       : slot.next_spawn;
      }
    }
    if (!spawn_at && worker_readable(*slot.worker)) {
      retire(slot, Death::idle, "no job (idle)");
      continue;
    }
    if (spawn_at && Clock::now() >= *spawn_at) {
      try_spawn(slot);
      continue;
    }
    // Sleep until: stop() (stop_fd_), a job arrives (wake_fd_), the idle
    // worker dies (its socket reads EOF), or the replacement may start.
    pollfd fds[3] = {{stop_fd_, POLLIN, 0},
                     {slot.worker ? slot.worker->fd() : -1, POLLIN, 0},
                     {wake_fd_, POLLIN, 0}};
    int timeout_ms = -1;
    if (spawn_at) {
      timeout_ms = static_cast<int>(
          std::chrono::ceil<std::chrono::milliseconds>(*spawn_at - Clock::now()).count());
      timeout_ms = std::max(timeout_ms, 0);
    }
    // Slots without a worker do not consume job wake-ups: a job must wake a
    // slot that can run it.
    const int n = ::poll(fds, spawn_at ? 1 : 3, timeout_ms);
    if (n <= 0 || (fds[0].revents & POLLIN))
      continue;  // time to spawn, or stopping (checked above)
    if (!spawn_at && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      retire(slot, Death::idle, "no job (idle)");
      continue;
    }
    if (!spawn_at && (fds[2].revents & POLLIN)) {
      std::uint64_t ignored;
      (void)!::read(wake_fd_, &ignored, sizeof ignored);
    }
  }
}

void Pool::slot_main(Slot& slot) {
  while (auto job = next_job(slot)) {
    if (Clock::now() >= job->deadline) {
      job->result.set_value(
          Status(Errc::timeout, "'" + job->what + "' waited in the queue past its deadline"));
      continue;
    }
    std::optional<Death> death;
    Result<std::string> result = execute(slot, *job, &death);
    // The caller gets its answer before the (possibly slow) kill and reap.
    job->worker_died = death.has_value();
    job->result.set_value(std::move(result));
    if (death) {
      retire(slot, *death, job->what);
      job->retired.set_value();
    }
  }
}

Result<std::string> Pool::execute(Slot& slot, Pending& job, std::optional<Death>* death) {
  WorkerProcess& worker = *slot.worker;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
    slot.busy_fd = worker.fd();
  }
  Result<ipc::ReceivedFrame> reply = Status(Errc::internal, "unset");
  // The write has the job's deadline too: a stopped worker whose socket
  // buffer is full must not block the slot for ever.
  Status sent = ipc::write_frame(worker.fd(), job.frame, -1, job.deadline);
  if (sent.ok())
    reply = ipc::read_frame(worker.fd(), ipc::kMaxReplyFrame, job.deadline);
  else
    reply = sent;
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    ++stats_.jobs_run;
    slot.busy_fd = -1;
    stopping = stopping_;
    if (reply.ok()) slot.consecutive_deaths = 0;
  }
  if (reply.ok()) {
    // A reply that is not even a msgpack map means the worker no longer
    // follows the protocol: replace it rather than trust its next reply.
    if (auto parsed = ipc::Message::parse(reply->body, ipc::kReplyLimits); !parsed.ok()) {
      *death = Death::protocol;
      return Status(Errc::worker_protocol, "worker pid " + std::to_string(worker.pid()) +
                                               " sent an invalid reply to '" + job.what +
                                               "': " + parsed.status().message());
    }
    return std::move(reply->body);
  }
  if (stopping)
    return Status(Errc::shutting_down, "genomed is stopping");  // stop() interrupted the job

  const pid_t pid = worker.pid();
  switch (reply.code()) {
    case Errc::timeout:
      *death = Death::timed_out;
      return Status(Errc::timeout, "worker pid " + std::to_string(pid) + " did not finish '" +
                                       job.what +
                                       "' before the deadline; it is being stopped and replaced");
    case Errc::not_connected:
      *death = Death::crashed;
      // The exit status tells how it died; reaping first costs nothing here
      // (the socket closed, so the process is gone or going).
      return Status(Errc::worker_crashed, "worker pid " + std::to_string(pid) + " died (" +
                                              worker.reap() + ") during '" + job.what + "'");
    default:
      *death = Death::protocol;
      return Status(Errc::worker_protocol, "worker pid " + std::to_string(pid) +
                                               " broke the job protocol during '" + job.what +
                                               "': " + reply.status().message());
  }
}

void Pool::retire(Slot& slot, Death death, const std::string& what) {
  WorkerProcess& worker = *slot.worker;
  const pid_t pid = worker.pid();
  if (death != Death::crashed) {
    // SIGTERM first; SIGKILL if it has not exited within the grace (a
    // stopped or D-state process ignores SIGTERM until it runs again). An
    // idle worker whose socket turned readable is ended the same way: it is
    // dead already (EOF) or no longer trusted (unsolicited bytes).
    worker.kill(SIGTERM);
    pollfd p{worker.fd(), POLLIN, 0};
    const auto grace_end = Clock::now() + options_.kill_grace;
    while (Clock::now() < grace_end) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(grace_end - Clock::now()).count();
      if (::poll(&p, 1, static_cast<int>(left)) > 0) {
        char b;
        if (::recv(worker.fd(), &b, 1, MSG_DONTWAIT) == 0) break;  // EOF: it exited
      }
    }
    worker.kill(SIGKILL);
  }
  const std::string how = worker.reap();
  switch (death) {
    case Death::crashed:
    case Death::idle:
      spdlog::error("worker pid {} died ({}) during '{}'", pid, how, what);
      break;
    case Death::timed_out:
      spdlog::warn("worker pid {} missed the deadline of '{}'; stopped ({})", pid, what, how);
      break;
    case Death::protocol:
      spdlog::error("worker pid {} broke the job protocol during '{}'; stopped ({})", pid, what,
                    how);
      break;
  }
  std::deque<std::shared_ptr<Pending>> refused;
  {
    std::lock_guard lock(mu_);
    slot.worker.reset();
    --stats_.workers_alive;
    ++stats_.worker_restarts;
    if (death == Death::timed_out)
      ++stats_.worker_timeouts;
    else
      ++stats_.worker_crashes;
    ++slot.consecutive_deaths;
    slot.next_spawn = restart_policy_.on_death(slot.consecutive_deaths);
    if (restart_policy_.unhealthy()) refused.swap(queue_);  // fail fast, not at their deadlines
    stats_.queue_depth = queue_.size();
  }
  for (auto& p : refused) {
    p->result.set_value(
        Status(Errc::unhealthy, "loader workers restarted too often; the pool paused spawning"));
  }
}

PoolStats Pool::stats() const {
  std::lock_guard lock(mu_);
  PoolStats s = stats_;
  s.queue_depth = queue_.size();
  s.healthy = !restart_policy_.unhealthy();
  if (!s.healthy) {
    s.unhealthy_ms_left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              restart_policy_.unhealthy_until() - Clock::now())
                              .count();
  }
  return s;
}

std::vector<int> Pool::worker_pids() const {
  std::vector<int> pids;
  std::lock_guard lock(mu_);
  for (const auto& slot : slots_) {
    if (slot->worker) pids.push_back(slot->worker->pid());
  }
  return pids;
}

}  // namespace genomed::loader
