// Hashing a copy's pieces on a second core, right behind the copy (issue
// 24). A fill copies its weights into the arena piece by piece and hands
// each piece to its checksums (the sink); on one thread the copy waits for
// the hash and the hash for the copy. HashBehind runs the sink on a thread
// of its own, at most kMaxAhead pieces behind the copy: each piece is still
// in the cache the two cores share when it is hashed, and the copy of the
// next piece overlaps the hash of this one. The sink still sees every
// piece exactly once, in order, and only once the piece is written.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>

namespace genomed::format {

class HashBehind {
 public:
  using Sink = std::function<void(std::span<const std::byte>)>;

  // Pieces a copy may run ahead of its hash: 8 x 512 KiB stays well inside
  // the last-level cache.
  static constexpr std::size_t kMaxAhead = 8;

  // `threaded`: hash on a thread of its own; false (short ranges, where
  // starting a thread costs more than it wins), or a thread that cannot
  // start (the worker's address-space limit): add() calls the sink itself.
  HashBehind(const Sink& sink, bool threaded);
  // Stops the thread without hashing what is still queued (the copy
  // failed: its checksums are thrown away).
  ~HashBehind();
  HashBehind(const HashBehind&) = delete;
  HashBehind& operator=(const HashBehind&) = delete;

  // `piece` is written: hash it after the pieces added before it. Blocks
  // while kMaxAhead pieces wait.
  void add(std::span<const std::byte> piece);
  // Returns once every piece added has been hashed.
  void finish();

 private:
  void run();

  const Sink& sink_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::span<const std::byte>> queued_;  // guarded by mu_; at most kMaxAhead
  bool done_ = false;     // guarded by mu_: no piece will be added any more
  bool abandon_ = false;  // guarded by mu_: stop without hashing what is queued
  std::thread thread_;    // not joinable: the sink runs in add()
};

}  // namespace genomed::format
