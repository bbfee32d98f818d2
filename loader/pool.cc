#include "loader/pool.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <optional>

#include "common/safe_text.h"
#include "ipc/framing.h"
#include "loader/client_log.h"
#include "loader/job_clock.h"
#include "loader/worker_process.h"

namespace genomed::loader {

namespace {

// A job's result, handed from whoever settles the job (its slot, stop(),
// cancel(), a restart pause) to run(), which waits for it on the pool's
// clock (a future's wait could only be measured by the real one). Set once.
class JobResult {
 public:
  void set(Result<std::string> result) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    value_ = std::move(result);
    cv_.notify_all();
  }
  // True once set; false if `clock` reached `deadline` first.
  bool wait_until(WaitClock& clock, Clock::time_point deadline) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return genomed::wait_until(clock, cv_, lock, deadline,
                               [this]() REQUIRES(mu_) { return value_.has_value(); });
  }
  // Waits as long as it takes (the slot running the job ends it at its deadline).
  Result<std::string> take() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    lock.wait(cv_, [this]() REQUIRES(mu_) { return value_.has_value(); });
    return std::move(*value_);
  }

 private:
  Mutex mu_;
  std::condition_variable cv_;
  std::optional<Result<std::string>> value_ GUARDED_BY(mu_);
};

}  // namespace

struct Pool::Pending {
  std::string frame;     // the encoded job with its length prefix, as it goes on the wire
  std::vector<int> fds;  // sent with the frame's first byte (jobs::job_descriptors)
  // Keeps `fds` open until the job is sent: the caller's files outlive run().
  std::shared_ptr<const layout::AdapterFds> files;
  std::string what;  // for logs: "probe /roots/a/adapter_model.safetensors"
  Clock::time_point deadline;
  JobResult result;
  // Written by the slot before it sets `result` (which orders them).
  bool worker_died = false;
  Blame blame = Blame::none;
  std::promise<void> retired;           // set once a dead worker of this job is reaped
  std::shared_ptr<CancelToken> cancel;  // may be null
};

struct Pool::Slot {
  int index = 0;
  std::thread thread;
  // Set and reset only by this slot's thread (and stop() after the join),
  // under Pool::mu_; that thread reads it without the lock, other threads
  // (worker_pids) only under it. Its busy/spawn state is Pool::slot_state_.
  std::unique_ptr<WorkerProcess> worker;
};

Pool::SlotState& Pool::state_of(const Slot& slot) { return slot_state_[slot.index]; }

Pool::Pool(PoolOptions options, WaitClock& clock)
    : options_(std::move(options)),
      clock_(clock),
      restart_policy_(options_.restart, [&clock] { return clock.now(); }) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Pool::~Pool() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void Pool::wake_slots(std::uint64_t n) { (void)!::write(wake_fd_, &n, sizeof n); }

Status Pool::try_spawn(Slot& slot) {
  auto spawned = WorkerProcess::spawn(
      {options_.worker_executable, options_.arena_fd, options_.worker_extra_args});
  MutexLock lock(mu_);
  if (!spawned) {
    SlotState& state = state_of(slot);
    if (spawned.code() == Errc::worker_protocol) {
      // It ran but broke the start-up protocol (no channel, or one it did
      // not make): retired like a worker that broke the job protocol.
      spdlog::error("worker {} retired at start: {}", slot.index, spawned.status().message());
      ++stats_.worker_restarts;
      ++stats_.worker_crashes;
    } else {
      spdlog::error("cannot start worker {}: {}", slot.index, spawned.status().to_string());
    }
    ++state.consecutive_deaths;
    state.next_spawn = restart_policy_.on_death(state.consecutive_deaths);
    return spawned.status();
  }
  slot.worker = std::move(spawned).value();
  ++stats_.workers_alive;
  spdlog::debug("worker {} started as pid {}", slot.index, slot.worker->pid());
  return Status::Ok();
}

Status Pool::start() {
  if (wake_fd_ < 0 || stop_fd_ < 0)
    return Status(Errc::environment, "the pool's eventfds could not be created");
  {
    MutexLock lock(mu_);
    slot_state_.assign(static_cast<std::size_t>(options_.workers), SlotState{});
  }
  for (int i = 0; i < options_.workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->index = i;
    slots_.push_back(std::move(slot));
    // A worker that cannot be started at all (a wrong path) stops genomed
    // here; one that started and was retired is replaced by its slot.
    if (Status s = try_spawn(*slots_.back()); !s.ok() && s.code() != Errc::worker_protocol) {
      stop();
      return Status(s.code(), s.message() + " (check --worker-path)");
    }
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
    MutexLock lock(mu_);
    if (stopping_ && slots_.empty()) return;
    stopping_ = true;
    orphans.swap(queue_);
    // Interrupt running jobs: their slot reads EOF and ends at once instead
    // of waiting out the job's deadline.
    for (const SlotState& state : slot_state_) {
      if (state.busy_fd >= 0) ::shutdown(state.busy_fd, SHUT_RDWR);
    }
  }
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);  // never read: every slot, in every state, wakes
  for (auto& p : orphans) p->result.set(Status(Errc::shutting_down, "genomed is stopping"));
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
    slot->worker.reset();  // closes the socket, waits briefly, SIGKILLs, reaps
  }
  MutexLock lock(mu_);
  slots_.clear();  // under mu_: worker_pids() may be reading it
  slot_state_.clear();
  stats_.workers_alive = 0;
}

Result<std::string> Pool::run(const jobs::Job& job, Clock::time_point deadline, JobFate* fate,
                              std::shared_ptr<CancelToken> cancel) {
  auto pending = std::make_shared<Pending>();
  {
    const std::string body = jobs::encode_job(job);
    const auto len = static_cast<std::uint32_t>(body.size());
    pending->frame.reserve(4 + body.size());
    for (int shift = 24; shift >= 0; shift -= 8)
      pending->frame.push_back(static_cast<char>(len >> shift));
    pending->frame += body;
  }
  pending->fds = jobs::job_descriptors(job);
  pending->files = job.files;
  // The path holds a client's adapter name: printable() keeps every log
  // line and message that quotes it on one line of UTF-8.
  pending->what = std::string(job.kind == jobs::JobKind::probe  ? "probe "
                              : job.kind == jobs::JobKind::seal ? "seal "
                                                                : "fill ") +
                  printable(job.paths.weights);
  pending->deadline = deadline;
  pending->cancel = std::move(cancel);
  std::shared_future<void> worker_gone = pending->retired.get_future().share();
  {
    MutexLock lock(mu_);
    if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
    // Fired under mu_ (cancel()), so a job never enters the queue after
    // its token's sweep.
    if (pending->cancel && pending->cancel->cancelled())
      return Status(Errc::cancelled, "'" + pending->what + "' was cancelled");
    if (restart_policy_.unhealthy()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          restart_policy_.unhealthy_until() - clock_.now());
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
  // arrive first when it is running. On genomed's RunClock a pause of genomed
  // does not count here either: a job queued behind workers that finished
  // while genomed was stopped is taken by the first slot that runs again.
  if (!pending->result.wait_until(clock_, deadline + std::chrono::milliseconds(250))) {
    MutexLock lock(mu_);
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
  auto result = pending->result.take();
  if (fate != nullptr) {
    fate->worker_died = pending->worker_died;
    fate->blame = pending->blame;
    fate->worker_gone = worker_gone;
  }
  return result;
}

void Pool::cancel(CancelToken& token) {
  std::vector<std::shared_ptr<Pending>> withdrawn;
  {
    MutexLock lock(mu_);
    token.fire();  // a slot running one of its jobs wakes on token.fd()
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancel.get() == &token) {
        withdrawn.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    stats_.queue_depth = queue_.size();
  }
  for (auto& p : withdrawn) {
    // Per job a client asked for: within the client lines' allowance.
    client_log().debug("'{}' cancelled while queued; withdrawn", p->what);
    p->result.set(Status(Errc::cancelled, "'" + p->what + "' was cancelled while queued"));
  }
}

namespace {

// An idle worker's socket turns readable only when the worker died (EOF) or
// broke the protocol (unsolicited bytes). Checked before handing it a job,
// so a death while idle is never blamed on the next adapter. A look, not a
// wait (timeout 0): the only ::poll of the pool that is not the clock's.
bool worker_readable(const WorkerProcess& worker) {
  pollfd p{worker.fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

std::shared_ptr<Pool::Pending> Pool::next_job(Slot& slot) {
  for (;;) {
    std::optional<Clock::time_point> spawn_at;
    {
      MutexLock lock(mu_);
      if (stopping_) return nullptr;
      if (slot.worker && !queue_.empty() && !worker_readable(*slot.worker)) {
        // The first of the highest priority: FIFO within one.
        const auto priority = [](const std::shared_ptr<Pending>& p) {
          return p->cancel ? p->cancel->priority() : 1;
        };
        auto pick = queue_.begin();
        for (auto it = queue_.begin(); it != queue_.end(); ++it) {
          if (priority(*it) > priority(*pick)) pick = it;
        }
        auto job = std::move(*pick);
        queue_.erase(pick);
        stats_.queue_depth = queue_.size();
        // One read of the eventfd consumes every pending wake-up: pass one
        // on if jobs remain, so an idle slot does not sleep past them.
        if (!queue_.empty()) wake_slots(1);
        return job;
      }
      if (!slot.worker) {
        // A pause that began after this slot's backoff was set holds it too.
        const Clock::time_point next_spawn = state_of(slot).next_spawn;
        spawn_at = restart_policy_.unhealthy()
                       ? std::max(next_spawn, restart_policy_.unhealthy_until())
                       : next_spawn;
      }
    }
    if (!spawn_at && worker_readable(*slot.worker)) {
      retire(slot, Death::idle, "no job (idle)");
      continue;
    }
    if (spawn_at && clock_.now() >= *spawn_at) {
      (void)try_spawn(slot);  // a failure is logged and sets the next try
      continue;
    }
    // Sleep until: stop() (stop_fd_), a job arrives (wake_fd_), the idle
    // worker dies (its socket reads EOF), or the replacement may start.
    pollfd fds[3] = {{stop_fd_, POLLIN, 0},
                     {slot.worker ? slot.worker->fd() : -1, POLLIN, 0},
                     {wake_fd_, POLLIN, 0}};
    // Slots without a worker do not consume job wake-ups: a job must wake a
    // slot that can run it.
    const int n = clock_.poll(fds, spawn_at ? 1 : 3, spawn_at.value_or(Clock::time_point::max()));
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
    if (clock_.now() >= job->deadline) {
      job->result.set(
          Status(Errc::timeout, "'" + job->what + "' waited in the queue past its deadline"));
      continue;
    }
    std::optional<Death> death;
    Blame blame = Blame::none;
    Result<std::string> result = execute(slot, *job, &death, &blame);
    // The caller gets its answer before the (possibly slow) kill and reap.
    job->worker_died = death.has_value();
    job->blame = death ? blame : Blame::none;
    job->result.set(std::move(result));
    if (death) {
      retire(slot, *death, job->what);
      job->retired.set_value();
    }
  }
}

namespace {

Status socket_gone(const char* what) {
  return Status(Errc::not_connected, std::string(what) + ": " + std::strerror(errno));
}

// Sends a whole frame (length prefix included) to the worker. Errors:
// not_connected (it is gone), timeout (its socket buffer stayed full: a
// stopped worker).
bool fired(const CancelToken* cancel) { return cancel != nullptr && cancel->cancelled(); }

Status cancelled_status() { return Status(Errc::cancelled, "the job was cancelled"); }

// Waits one slice of `clock` for `events` on the worker's socket or for the
// job's cancellation (its token's eventfd).
int wait_worker(int fd, short events, const CancelToken* cancel, JobClock& clock) {
  pollfd p[2] = {{fd, events, 0}, {cancel ? cancel->fd() : -1, POLLIN, 0}};
  return clock.wait(p, 2);
}

Status send_job(int fd, const std::string& frame, std::span<const int> fds, JobClock& clock,
                const CancelToken* cancel) {
  std::size_t sent = 0;
  while (sent < frame.size()) {
    // The job's descriptors ride with its first byte.
    GENOMED_ASSIGN_OR_RETURN(const std::size_t n,
                             ipc::send_bytes_now(fd, std::string_view(frame).substr(sent),
                                                 sent == 0 ? fds : std::span<const int>()));
    if (n > 0) {
      sent += n;
      continue;
    }
    if (fired(cancel)) return cancelled_status();
    clock.look();
    if (clock.expired()) return Status(Errc::timeout, "the worker did not take the job in time");
    if (wait_worker(fd, POLLOUT, cancel, clock) < 0 && errno != EINTR) return socket_gone("poll");
  }
  return Status::Ok();
}

// Reads the worker's reply frame. Everything already waiting on the socket is
// read before the clock is looked at, so a reply that arrived while genomed
// was not running (or just as the deadline passed) is taken, never discarded
// as late. Errors: not_connected (EOF or a socket error: the worker died),
// frame_too_large, timeout, cancelled (the token fired and no complete reply
// was waiting: a finished job is taken rather than its worker killed).
Result<std::string> receive_reply(int fd, JobClock& clock, const CancelToken* cancel) {
  unsigned char header[4];
  std::size_t have = 0;  // bytes of header + body received
  std::uint32_t len = 0;
  std::string body;
  for (;;) {
    for (;;) {  // take what is waiting, without blocking
      char* dst;
      std::size_t want;
      if (have < 4) {
        dst = reinterpret_cast<char*>(header) + have;
        want = 4 - have;
      } else {
        dst = body.data() + (have - 4);
        want = len - (have - 4);
      }
      if (want == 0) return body;
      const ssize_t n = ::recv(fd, dst, want, MSG_DONTWAIT);
      if (n == 0) {
        return Status(Errc::not_connected, have == 0 ? "peer closed the connection"
                                                     : "peer closed the connection mid-frame");
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return socket_gone("recv");
      }
      have += static_cast<std::size_t>(n);
      if (have == 4) {
        len = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
              (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
        if (len > ipc::kMaxReplyFrame) {
          return Status(Errc::frame_too_large, "frame of " + std::to_string(len) +
                                                   " bytes exceeds the limit of " +
                                                   std::to_string(ipc::kMaxReplyFrame));
        }
        body.resize(len);
      }
    }
    if (fired(cancel)) return cancelled_status();
    clock.look();
    if (clock.expired()) return Status(Errc::timeout, "no reply before the deadline");
    if (wait_worker(fd, POLLIN, cancel, clock) < 0 && errno != EINTR) return socket_gone("poll");
  }
}

bool is_crash_signal(int sig) {
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGFPE || sig == SIGILL;
}

}  // namespace

const char* blame_name(Blame blame) {
  switch (blame) {
    case Blame::none:
      return "none";
    case Blame::adapter:
      return "adapter";
    case Blame::external:
      return "external";
  }
  return "?";
}

Blame blame_for_exit(const WorkerExit& exit) {
  if (!exit.known) return Blame::external;            // nothing proves the adapter did it
  if (!exit.signaled) return Blame::adapter;          // it quit in the middle of a job
  if (exit.signal_sent_by_us) return Blame::adapter;  // only ever for a missed deadline
  return is_crash_signal(exit.signal) ? Blame::adapter : Blame::external;
}

Result<std::string> Pool::execute(Slot& slot, Pending& job, std::optional<Death>* death,
                                  Blame* blame) {
  WorkerProcess& worker = *slot.worker;
  {
    MutexLock lock(mu_);
    if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
    // Cancelled between the pop and now: the worker has not seen it.
    if (fired(job.cancel.get()))
      return Status(Errc::cancelled, "'" + job.what + "' was cancelled before it started");
    state_of(slot).busy_fd = worker.fd();
    state_of(slot).busy_since = clock_.now();
  }
  const pid_t pid = worker.pid();
  JobClock clock(clock_, job.deadline);
  // The write is watched too: a stopped worker whose socket buffer is full
  // must not block the slot for ever.
  Result<std::string> reply = Status(Errc::internal, "unset");
  if (Status sent = send_job(worker.fd(), job.frame, job.fds, clock, job.cancel.get()); sent.ok()) {
    client_log().debug("worker pid {} got job '{}'", pid, job.what);
    reply = receive_reply(worker.fd(), clock, job.cancel.get());
  } else {
    reply = sent;
  }
  bool stopping = false;
  {
    MutexLock lock(mu_);
    ++stats_.jobs_run;
    SlotState& state = state_of(slot);
    state.busy_fd = -1;
    stopping = stopping_;
    if (reply.ok()) state.consecutive_deaths = 0;
  }
  if (reply.ok()) {
    // A reply that is not even a msgpack map means the worker no longer
    // follows the protocol: replace it rather than trust its next reply.
    if (Status parsed = jobs::check_reply(*reply); !parsed.ok()) {
      *death = Death::protocol;
      *blame = Blame::adapter;
      return Status(Errc::worker_protocol, "worker pid " + std::to_string(pid) +
                                               " sent an invalid reply to '" + job.what +
                                               "': " + parsed.message());
    }
    return reply;
  }
  if (stopping)
    return Status(Errc::shutting_down, "genomed is stopping");  // stop() interrupted the job

  switch (reply.code()) {
    case Errc::cancelled:
      // The caller gave the job up: the worker (mid-job, or holding part of
      // a frame) is stopped as for a deadline, but nobody is blamed.
      *death = Death::cancelled;
      *blame = Blame::none;
      return Status(Errc::cancelled, "'" + job.what + "' was cancelled while worker pid " +
                                         std::to_string(pid) +
                                         " ran it; the worker is being stopped and replaced");
    case Errc::timeout:
      // Stopped by the pool for missing its deadline (time genomed ran).
      *death = Death::timed_out;
      *blame = Blame::adapter;
      return Status(Errc::timeout, "worker pid " + std::to_string(pid) + " did not finish '" +
                                       job.what +
                                       "' before the deadline; it is being stopped and replaced");
    case Errc::not_connected: {
      *death = Death::crashed;
      // The exit status tells how it died; reaping first costs nothing here
      // (the socket closed, so the process is gone or going). The pool sent
      // it no signal: it ended by itself or by someone else's hand.
      const std::string how = worker.reap();
      *blame = blame_for_exit(worker.exit());
      std::string cause = how;
      if (*blame == Blame::external && worker.exit().signaled) {
        cause +=
            ", which genomed did not send: the OOM killer or an operator? "
            "Not counted against the adapter";
      }
      return Status(Errc::worker_crashed, "worker pid " + std::to_string(pid) + " died (" + cause +
                                              ") during '" + job.what + "'");
    }
    default:
      *death = Death::protocol;
      *blame = Blame::adapter;
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
    const auto grace_end = clock_.now() + options_.kill_grace;
    while (clock_.now() < grace_end) {
      if (clock_.poll(&p, 1, grace_end) > 0) {
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
    case Death::cancelled:
      spdlog::info("worker pid {} stopped ({}): '{}' was cancelled", pid, how, what);
      break;
    case Death::protocol:
      spdlog::error("worker pid {} broke the job protocol during '{}'; stopped ({})", pid, what,
                    how);
      break;
  }
  std::deque<std::shared_ptr<Pending>> refused;
  {
    MutexLock lock(mu_);
    slot.worker.reset();
    --stats_.workers_alive;
    ++stats_.worker_restarts;
    if (death == Death::cancelled) {
      // Not the worker's failure: replaced at once, outside the backoff and
      // the restart intensity (unloads must not make the pool unhealthy).
      state_of(slot).next_spawn = clock_.now();
    } else {
      if (death == Death::timed_out)
        ++stats_.worker_timeouts;
      else
        ++stats_.worker_crashes;
      SlotState& state = state_of(slot);
      ++state.consecutive_deaths;
      state.next_spawn = restart_policy_.on_death(state.consecutive_deaths);
    }
    if (restart_policy_.unhealthy()) refused.swap(queue_);  // fail fast, not at their deadlines
    stats_.queue_depth = queue_.size();
  }
  for (auto& p : refused) {
    p->result.set(
        Status(Errc::unhealthy, "loader workers restarted too often; the pool paused spawning"));
  }
}

PoolStats Pool::stats() const {
  MutexLock lock(mu_);
  PoolStats s = stats_;
  s.queue_depth = queue_.size();
  Clock::time_point latest_start{};
  for (const SlotState& state : slot_state_) {
    if (state.busy_fd < 0) continue;
    ++s.workers_busy;
    latest_start = std::max(latest_start, state.busy_since);
  }
  if (!slot_state_.empty() && s.workers_busy == slot_state_.size()) {
    s.all_busy_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - latest_start).count();
  }
  s.healthy = !restart_policy_.unhealthy();
  if (!s.healthy) {
    s.unhealthy_ms_left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              restart_policy_.unhealthy_until() - clock_.now())
                              .count();
  }
  return s;
}

std::vector<int> Pool::worker_pids() const {
  std::vector<int> pids;
  MutexLock lock(mu_);
  for (const auto& slot : slots_) {
    if (slot->worker) pids.push_back(slot->worker->pid());
  }
  return pids;
}

}  // namespace genomed::loader
