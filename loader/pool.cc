#include "loader/pool.h"

#include <signal.h>
#include <sys/socket.h>

#include <future>

#include <spdlog/spdlog.h>

#include "ipc/framing.h"
#include "loader/worker_process.h"

namespace genomed::loader {

struct Pool::Pending {
  std::string frame;  // the encoded job
  std::string what;   // for logs: "probe /roots/a/adapter_model.safetensors"
  Clock::time_point deadline;
  std::promise<Result<std::string>> result;
  std::atomic<bool> abandoned{false};  // the caller gave up waiting
};

struct Pool::Slot {
  int index = 0;
  std::thread thread;
  std::unique_ptr<WorkerProcess> worker;  // owned by this slot's thread only
  int busy_fd = -1;  // the worker's socket while it runs a job; guarded by Pool::mu_
};

Pool::Pool(PoolOptions options) : options_(std::move(options)) {}

Pool::~Pool() { stop(); }

Status Pool::ensure_worker(Slot& slot) {
  if (slot.worker) return Status::Ok();
  auto spawned = WorkerProcess::spawn({options_.worker_executable, options_.arena_fd, options_.worker_extra_args});
  if (!spawned) return spawned.status();
  slot.worker = std::move(spawned).value();
  spdlog::debug("worker {} started as pid {}", slot.index, slot.worker->pid());
  std::lock_guard lock(mu_);
  ++stats_.workers_alive;
  return Status::Ok();
}

Status Pool::start() {
  for (int i = 0; i < options_.workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->index = i;
    if (Status s = ensure_worker(*slot); !s.ok()) {
      stop();
      return s;
    }
    slots_.push_back(std::move(slot));
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
  work_.notify_all();
  for (auto& p : orphans) p->result.set_value(Status(Errc::shutting_down, "genomed is stopping"));
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
    slot->worker.reset();  // closes the socket, waits briefly, SIGKILLs, reaps
  }
  slots_.clear();
  std::lock_guard lock(mu_);
  stats_.workers_alive = 0;
}

Result<std::string> Pool::run(const jobs::Job& job, Clock::time_point deadline) {
  auto pending = std::make_shared<Pending>();
  pending->frame = jobs::encode_job(job);
  pending->what = std::string(job.kind == jobs::JobKind::probe ? "probe " : "fill ") + job.paths.weights;
  pending->deadline = deadline;
  auto future = pending->result.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
    if (queue_.size() >= options_.queue_limit) {
      return Status(Errc::overloaded, std::to_string(queue_.size()) +
                                          " loads are already queued (queue limit); retry later");
    }
    queue_.push_back(pending);
  }
  work_.notify_one();
  // The slot enforces the deadline on a running job (it kills the worker);
  // this wait covers a job still queued behind busy workers. The grace lets
  // the slot's own timeout result arrive first when it is running.
  if (future.wait_until(deadline + std::chrono::milliseconds(250)) == std::future_status::ready) {
    return future.get();
  }
  pending->abandoned = true;
  return Status(Errc::timeout, "no worker finished '" + pending->what + "' before the deadline");
}

void Pool::slot_main(Slot& slot) {
  for (;;) {
    std::shared_ptr<Pending> job;
    {
      std::unique_lock lock(mu_);
      work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      stats_.queue_depth = queue_.size();
    }
    if (job->abandoned) continue;
    if (Clock::now() >= job->deadline) {
      job->result.set_value(Status(Errc::timeout, "'" + job->what + "' waited in the queue past its deadline"));
      continue;
    }
    job->result.set_value(execute(slot, *job));
  }
}

Result<std::string> Pool::execute(Slot& slot, const Pending& job) {
  if (Status s = ensure_worker(slot); !s.ok()) return s;
  WorkerProcess& worker = *slot.worker;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
    slot.busy_fd = worker.fd();
  }
  Result<ipc::ReceivedFrame> reply = Status(Errc::internal, "unset");
  Status sent = ipc::write_frame(worker.fd(), job.frame);
  if (sent.ok()) reply = ipc::read_frame(worker.fd(), ipc::kMaxReplyFrame, job.deadline);
  else reply = sent;
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    ++stats_.jobs_run;
    slot.busy_fd = -1;
    stopping = stopping_;
  }
  if (reply.ok()) return std::move(reply->body);
  if (stopping) return Status(Errc::shutting_down, "genomed is stopping");  // stop() interrupted the job

  // The worker died, hung, or broke the protocol: end it, reap it once, and
  // start a replacement before the next job.
  const Errc cause = reply.code();
  const pid_t pid = worker.pid();
  if (cause != Errc::not_connected) worker.kill(SIGKILL);
  const std::string how = worker.reap();
  slot.worker.reset();
  {
    std::lock_guard lock(mu_);
    --stats_.workers_alive;
    ++stats_.worker_restarts;
    if (cause == Errc::timeout) ++stats_.worker_timeouts;
    else ++stats_.worker_crashes;
  }
  Status failure;
  if (cause == Errc::timeout) {
    spdlog::warn("worker pid {} timed out on '{}'; killed ({})", pid, job.what, how);
    failure = Status(Errc::timeout, "the worker did not finish '" + job.what + "' before the deadline; it was killed");
  } else if (cause == Errc::not_connected) {
    spdlog::error("worker pid {} died ({}) during '{}'", pid, how, job.what);
    failure = Status(Errc::worker_crashed, "the worker died (" + how + ") during '" + job.what + "'");
  } else {
    spdlog::error("worker pid {} broke the job protocol ({}) during '{}'; killed", pid, reply.status().to_string(),
                  job.what);
    failure = Status(Errc::worker_protocol, "the worker sent an invalid reply during '" + job.what + "'");
  }
  if (Status s = ensure_worker(slot); !s.ok()) {
    spdlog::error("cannot restart worker {}: {}", slot.index, s.to_string());
  }
  return failure;
}

PoolStats Pool::stats() const {
  std::lock_guard lock(mu_);
  PoolStats s = stats_;
  s.queue_depth = queue_.size();
  return s;
}

}  // namespace genomed::loader
