#include "worker/format/hash_behind.h"

#include <system_error>

namespace genomed::format {

HashBehind::HashBehind(const Sink& sink, bool threaded) : sink_(sink) {
  if (!threaded) return;
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error&) {
    // No room for a thread: hash inline, as for a short range.
  }
}

HashBehind::~HashBehind() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    abandon_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void HashBehind::add(std::span<const std::byte> piece) {
  if (!thread_.joinable()) {
    sink_(piece);
    return;
  }
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return queued_.size() < kMaxAhead; });
    queued_.push_back(piece);
  }
  cv_.notify_all();
}

void HashBehind::finish() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();  // run() returns once the queue is empty
}

void HashBehind::run() {
  for (;;) {
    std::span<const std::byte> piece;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return abandon_ || done_ || !queued_.empty(); });
      if (abandon_ || queued_.empty()) return;  // queue empty here means done_
      piece = queued_.front();
    }
    sink_(piece);  // outside the lock: the copy goes on meanwhile
    {
      std::lock_guard lock(mu_);
      queued_.pop_front();
    }
    cv_.notify_all();
  }
}

}  // namespace genomed::format
