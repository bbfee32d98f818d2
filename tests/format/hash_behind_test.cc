// HashBehind (worker/format/hash_behind.h): the sink sees every piece once,
// in order, on a thread of its own when threaded and inline otherwise;
// finish() returns only once every piece is hashed; a HashBehind dropped
// without finish() (the copy failed) stops without waiting for the queue.
#include "worker/format/hash_behind.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <future>
#include <thread>
#include <vector>

namespace genomed::format {
namespace {

std::vector<std::byte> bytes(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 7 + 3);
  return v;
}

TEST(HashBehind, EveryPieceOnceInOrderOnAThreadOfItsOwn) {
  const std::vector<std::byte> data = bytes(1 << 16);
  std::vector<const std::byte*> seen;
  std::vector<std::thread::id> threads;
  const HashBehind::Sink sink = [&](std::span<const std::byte> piece) {
    seen.push_back(piece.data());
    threads.push_back(std::this_thread::get_id());
  };
  HashBehind hasher(sink, /*threaded=*/true);
  constexpr std::size_t kPiece = 1000;
  std::vector<const std::byte*> added;
  for (std::size_t at = 0; at < data.size(); at += kPiece) {
    added.push_back(data.data() + at);
    hasher.add(std::span(data).subspan(at, std::min(kPiece, data.size() - at)));
  }
  hasher.finish();  // after this, `seen` is complete and no longer written
  EXPECT_EQ(seen, added);
  for (const std::thread::id& id : threads) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(HashBehind, UnthreadedItHashesEachPieceInAdd) {
  const std::vector<std::byte> data = bytes(4096);
  std::size_t hashed = 0;
  const HashBehind::Sink sink = [&](std::span<const std::byte> piece) {
    EXPECT_EQ(piece.data(), data.data() + hashed);
    hashed += piece.size();
  };
  HashBehind hasher(sink, /*threaded=*/false);
  hasher.add(std::span(data).first(1000));
  EXPECT_EQ(hashed, 1000u);  // already, before finish()
  hasher.add(std::span(data).subspan(1000));
  EXPECT_EQ(hashed, data.size());
  hasher.finish();
}

TEST(HashBehind, DroppedWithoutFinishItStopsWithoutHashingTheQueue) {
  const std::vector<std::byte> data = bytes(HashBehind::kMaxAhead * 16);
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> go = release.get_future().share();
  std::size_t calls = 0;
  const HashBehind::Sink sink = [&](std::span<const std::byte>) {
    if (calls++ == 0) {
      entered.set_value();
      go.wait();  // the first piece is being hashed while the copy fails
    }
  };
  {
    HashBehind hasher(sink, /*threaded=*/true);
    for (std::size_t i = 0; i < HashBehind::kMaxAhead; ++i) {
      hasher.add(std::span(data).subspan(i * 16, 16));
    }
    entered.get_future().wait();
    release.set_value();
    // Leaving the scope without finish(): the destructor stops the thread.
  }
  EXPECT_GE(calls, 1u);
  EXPECT_LE(calls, HashBehind::kMaxAhead);
}

}  // namespace
}  // namespace genomed::format
