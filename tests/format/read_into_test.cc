// The fill's reader (worker/format/read_into.h): whichever way it reads
// (buffered, direct with several reads in flight, direct refused and fallen
// back, short reads) the destination holds exactly the file's bytes and the
// sink sees them in order; a failing read is file_unreadable naming the
// file and the offset, a file that ends early is file_changed; a file the
// page cache does not hold is read direct, one it holds is read buffered.
#include "worker/format/read_into.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "common/memory_limit.h"
#include "tests/format/test_support.h"

namespace genomed::format {
namespace {

using testing::TempDir;

// Bytes that differ at every offset (a misplaced chunk shows).
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  std::uint32_t x = 2463534242u;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// Direct reads whatever the page cache holds, in small chunks so that a
// small file takes many chunks and every reader thread several of them.
ReadOptions forced_direct() {
  ReadOptions o;
  o.direct_below_cached = 2;
  o.direct_min = 0;
  o.direct_chunk = 8192;
  o.direct_in_flight = 3;
  return o;
}

struct Got {
  Status status;
  std::string bytes;   // the destination after the read
  std::string pieces;  // what the sink saw, concatenated in order
  ReadMode mode = ReadMode::buffered;
  std::uint64_t fallbacks = 0;
  std::uint64_t in_place = 0;  // bytes read straight into the destination
};

// Where read_range puts the destination: wherever a std::string's buffer
// is; or in a shared mapping of a memfd, as the worker's arena window, at an
// address with the file offset's alignment mod 4096 (so every direct chunk
// wholly inside the range may be read straight into it) or 8 bytes off that
// (so none may).
enum class Dest { anywhere, file_aligned, off_by_8 };

// A shared memory mapping of `bytes`, unmapped when it goes.
struct SharedMapping {
  explicit SharedMapping(std::size_t n) : bytes(n) {
    const Fd fd(::memfd_create("read-into-test", MFD_CLOEXEC));
    if (fd.valid() && ::ftruncate(fd.get(), static_cast<off_t>(n)) == 0) {
      void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      if (p != MAP_FAILED) data = static_cast<std::byte*>(p);
    }
  }
  ~SharedMapping() {
    if (data != nullptr) ::munmap(data, bytes);
  }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  std::size_t bytes;
  std::byte* data = nullptr;
};

Got read_range(const std::string& path, std::uint64_t offset, std::uint64_t length,
               const ReadOptions& options, Dest dest = Dest::anywhere) {
  Got g;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd.valid()) << path;
  RangeReader reader(fd.get(), path, options);
  g.bytes.assign(length, '\xEE');
  std::optional<SharedMapping> shared;
  std::byte* out = reinterpret_cast<std::byte*>(g.bytes.data());
  if (dest != Dest::anywhere) {
    shared.emplace((length / 4096 + 3) * 4096);
    EXPECT_NE(shared->data, nullptr);
    if (shared->data == nullptr) return g;
    out = shared->data + offset % 4096 + (dest == Dest::off_by_8 ? 8 : 0);
    std::memset(out, 0xEE, length);
  }
  g.status = reader.read(offset, length, out, [&](std::span<const std::byte> piece) {
    EXPECT_LE(piece.size(), kBufferedChunk);
    g.pieces.append(reinterpret_cast<const char*>(piece.data()), piece.size());
  });
  if (shared) g.bytes.assign(reinterpret_cast<const char*>(out), length);
  g.mode = reader.last_mode();
  g.fallbacks = reader.buffered_fallbacks();
  g.in_place = reader.bytes_read_in_place();
  return g;
}

// The read went well, `mode`'s way, and gave `want` both in the
// destination and to the sink.
void expect_read(const Got& g, ReadMode mode, const std::string& want) {
  ASSERT_TRUE(g.status.ok()) << g.status.to_string();
  EXPECT_EQ(g.mode, mode);
  EXPECT_TRUE(g.bytes == want);
  EXPECT_TRUE(g.pieces == want);
}

class RangeReaderTest : public ::testing::Test {
 protected:
  // An unaligned offset and an unaligned end inside a file of unaligned size.
  void SetUp() override {
    content_ = pattern(kFileBytes);
    testing::write_file(path_, content_);
  }
  static constexpr std::size_t kFileBytes = 3 * 65536 + 1234;
  static constexpr std::uint64_t kOffset = 4096 + 77;
  static constexpr std::uint64_t kLength = kFileBytes - kOffset - 555;
  std::string expected() const { return content_.substr(kOffset, kLength); }

  TempDir tmp_;  // under /tmp: a disk file system on the project machines
  const std::string path_ = tmp_ / "weights";
  std::string content_;
};

TEST_F(RangeReaderTest, BufferedReadGivesTheFileBytesAndHandsThemOverInOrder) {
  ReadOptions o;
  o.direct_below_cached = 0;
  expect_read(read_range(path_, kOffset, kLength, o), ReadMode::buffered, expected());
}

TEST_F(RangeReaderTest, DirectReadsInFlightGiveTheFileBytesInOrder) {
  const Got g = read_range(path_, kOffset, kLength, forced_direct());
  expect_read(g, ReadMode::direct, expected());
  EXPECT_EQ(g.fallbacks, 0u);
}

// A destination with the file's alignment takes the chunks wholly inside
// the range straight from the device, without a bounce copy: of the 24
// chunks here (8 KiB from the 4 KiB block holding kOffset), all but the
// first, which starts before the range, and the last, which ends after it.
// One 8 bytes off takes none that way. The same bytes either way.
TEST_F(RangeReaderTest, DirectChunksGoStraightIntoADestinationWithTheFilesAlignment) {
  const Got aligned = read_range(path_, kOffset, kLength, forced_direct(), Dest::file_aligned);
  expect_read(aligned, ReadMode::direct, expected());
  const std::uint64_t begin = kOffset / 4096 * 4096;
  const std::uint64_t ending_inside = (kOffset + kLength - begin) / 8192;  // the first among them
  EXPECT_EQ(aligned.in_place, (ending_inside - 1) * 8192);
  const Got off = read_range(path_, kOffset, kLength, forced_direct(), Dest::off_by_8);
  expect_read(off, ReadMode::direct, expected());
  EXPECT_EQ(off.in_place, 0u);
  // Short reads straight into the destination are completed in place.
  ReadOptions shortened = forced_direct();
  shortened.faults.short_reads = true;
  expect_read(read_range(path_, kOffset, kLength, shortened, Dest::file_aligned), ReadMode::direct,
              expected());
}

// A slow read holds back only its own chunk: while the first chunk's read
// is held, the other readers start every other chunk's read. (With chunks
// striped over the readers in advance, the held reader's later chunks were
// not started until it got on: the hold below would run out.)
TEST_F(RangeReaderTest, OneHeldReadDoesNotHoldBackTheOtherChunks) {
  ReadOptions o = forced_direct();  // 8 KiB chunks, 3 readers
  const std::uint64_t begin = kOffset / 4096 * 4096;
  const std::uint64_t chunks = (kOffset + kLength - begin + 8191) / 8192;
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::uint64_t> others_started;  // guarded by mu
  std::optional<std::size_t> started_while_held;
  o.faults.before_read = [&](std::uint64_t off) {
    std::unique_lock lock(mu);
    if (off == begin) {
      cv.wait_for(lock, std::chrono::seconds(10),
                  [&] { return others_started.size() == chunks - 1; });
      started_while_held = others_started.size();
    } else if ((off - begin) % 8192 == 0) {
      others_started.insert(off);
      cv.notify_all();
    }
  };
  expect_read(read_range(path_, kOffset, kLength, o), ReadMode::direct, expected());
  ASSERT_TRUE(started_while_held.has_value());
  EXPECT_EQ(*started_while_held, chunks - 1) << "other chunks started while the first was held";
}

TEST_F(RangeReaderTest, DirectReadToTheFilesUnalignedEndGivesEveryByte) {
  const Got g = read_range(path_, 100, kFileBytes - 100, forced_direct());
  ASSERT_TRUE(g.status.ok()) << g.status.to_string();
  EXPECT_EQ(g.mode, ReadMode::direct);
  EXPECT_TRUE(g.bytes == content_.substr(100));
}

TEST_F(RangeReaderTest, ShortReadsAreCompletedDirectAndBuffered) {
  for (const bool direct : {true, false}) {
    ReadOptions o = forced_direct();
    if (!direct) o.direct_below_cached = 0;
    o.faults.short_reads = true;
    SCOPED_TRACE(direct ? "direct" : "buffered");
    expect_read(read_range(path_, kOffset, kLength, o),
                direct ? ReadMode::direct : ReadMode::buffered, expected());
  }
}

TEST_F(RangeReaderTest, AnEioIsFileUnreadableNamingTheFileAndOffset) {
  for (const bool direct : {true, false}) {
    ReadOptions o = forced_direct();
    if (!direct) o.direct_below_cached = 0;
    o.faults.eio = true;
    const Got g = read_range(path_, kOffset, kLength, o);
    ASSERT_EQ(g.status.code(), Errc::file_unreadable) << g.status.to_string();
    EXPECT_NE(g.status.message().find(path_), std::string::npos) << g.status.message();
    EXPECT_NE(g.status.message().find("at offset"), std::string::npos) << g.status.message();
    EXPECT_NE(g.status.message().find(std::strerror(EIO)), std::string::npos)
        << g.status.message();
    EXPECT_TRUE(g.pieces.empty());
  }
}

TEST_F(RangeReaderTest, AFileThatEndsBeforeTheRangeIsFileChanged) {
  for (const bool direct : {true, false}) {
    ReadOptions o = forced_direct();
    if (!direct) o.direct_below_cached = 0;
    const Got g = read_range(path_, kOffset, kFileBytes, o);  // past the end
    EXPECT_EQ(g.status.code(), Errc::file_changed) << g.status.to_string();
    EXPECT_NE(g.status.message().find("shrank"), std::string::npos) << g.status.message();
  }
}

TEST_F(RangeReaderTest, ARefusedDirectOpenFallsBackToBufferedReads) {
  ReadOptions o = forced_direct();
  o.faults.no_direct = true;
  expect_read(read_range(path_, kOffset, kLength, o), ReadMode::buffered, expected());
}

// tmpfs: its pages are the file (never "not cached"), and a kernel before
// 6.6 refuses O_DIRECT there; whichever way it reads, the bytes are right.
TEST_F(RangeReaderTest, AFileOnTmpfsIsReadWhateverItsDirectSupport) {
  char templ[] = "/dev/shm/genomed-read-into-XXXXXX";
  const int fd = ::mkstemp(templ);
  ASSERT_GE(fd, 0);
  ::close(fd);
  testing::write_file(templ, content_);
  const Got forced = read_range(templ, kOffset, kLength, forced_direct());
  ReadOptions defaults;
  defaults.direct_min = 0;
  const Got chosen = read_range(templ, kOffset, kLength, defaults);
  ::unlink(templ);
  ASSERT_TRUE(forced.status.ok()) << forced.status.to_string();
  EXPECT_TRUE(forced.bytes == expected());
  ASSERT_TRUE(chosen.status.ok()) << chosen.status.to_string();
  EXPECT_EQ(chosen.mode, ReadMode::buffered);  // all of it is "cached"
  EXPECT_TRUE(chosen.bytes == expected());
}

// A worker under a tight --worker-memory-limit (RLIMIT_AS) has no room for
// the reader threads' stacks: the read goes buffered instead of ending the
// worker with an uncaught std::system_error. In a child: the limit stays there.
TEST_F(RangeReaderTest, WithoutRoomForItsThreadsTheReaderReadsBuffered) {
  EXPECT_EXIT(
      {
        // More readers than the stacks glibc may keep cached from earlier
        // tests' threads (at most 40 MiB): some cannot start.
        ReadOptions o = forced_direct();
        o.direct_chunk = 4096;
        o.direct_in_flight = 64;
        if (!limit_memory(4u << 20).ok()) std::_Exit(3);
        const Got g = read_range(path_, kOffset, kLength, o);
        const bool right = g.status.ok() && g.bytes == expected() && g.pieces == expected();
        std::_Exit(right && g.fallbacks == 1 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

void drop_from_page_cache(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::fdatasync(fd.get()), 0);
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
}

// A file long enough to be hashed behind the copy on a second thread
// (kHashBehindMin); reads of it start at an unaligned offset.
class RangeReaderLong : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string content = pattern(kHashBehindMin + 3 * kBufferedChunk + 999);
    testing::write_file(path_, content);
    want_ = content.substr(kOffset);
  }
  Got read(const ReadOptions& o) { return read_range(path_, kOffset, want_.size(), o); }

  static constexpr std::uint64_t kOffset = 4097;
  TempDir tmp_;
  const std::string path_ = tmp_ / "long";
  std::string want_;
};

// Read buffered: the same bytes, handed over in the same order.
TEST_F(RangeReaderLong, ABufferedRangeHashedBehindTheCopyGivesTheFileBytesInOrder) {
  ReadOptions o;
  o.direct_below_cached = 0;  // whatever the page cache holds of it
  expect_read(read(o), ReadMode::buffered, want_);
}

// Read direct in many more chunks than readers (about 70 for 3, each reader
// taking the next one nobody took): the same bytes, in the same order.
TEST_F(RangeReaderLong, ADirectRangeOfManyChunksGivesTheFileBytesInOrder) {
  ReadOptions o = forced_direct();
  o.direct_chunk = 64u << 10;
  expect_read(read(o), ReadMode::direct, want_);
}

// Options that would read this small file direct if it were not cached,
// as the defaults do for large ones (genomed --cold-reads direct).
ReadOptions direct_when_uncached() {
  ReadOptions o;
  o.direct_min = 0;
  o.direct_chunk = 8192;
  return o;
}

TEST_F(RangeReaderTest, ByDefaultAnUncachedFileIsReadDirectACachedOneBuffered) {
  const ReadOptions o = direct_when_uncached();
  drop_from_page_cache(path_);
  expect_read(read_range(path_, kOffset, kLength, o), ReadMode::direct, expected());
  (void)testing::read_file(path_);  // now it is cached
  expect_read(read_range(path_, kOffset, kLength, o), ReadMode::buffered, expected());
}

// genomed --cold-reads buffered: the page cache whatever it holds.
TEST_F(RangeReaderTest, WithBufferedColdReadsAnUncachedFileIsReadBuffered) {
  ReadOptions o = direct_when_uncached();
  o.direct_below_cached = 0;
  drop_from_page_cache(path_);
  expect_read(read_range(path_, kOffset, kLength, o), ReadMode::buffered, expected());
}

}  // namespace
}  // namespace genomed::format
