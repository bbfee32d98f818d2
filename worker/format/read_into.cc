#include "worker/format/read_into.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "worker/format/hash_behind.h"
#include "worker/format/regular_file.h"

namespace genomed::format {
namespace {

// O_DIRECT's alignment of file offsets, lengths and buffers. 4 KiB covers
// every logical block size in use (512 B and 4 KiB devices).
constexpr std::uint64_t kAlign = 4096;

std::uint64_t round_up(std::uint64_t n, std::uint64_t to) { return (n + to - 1) / to * to; }

// One pread, with the test faults applied.
ssize_t faulty_pread(int fd, std::byte* buf, std::size_t n, std::uint64_t off, bool direct,
                     const ReadFaults& faults) {
  if (faults.before_read) faults.before_read(off);
  if (faults.eio) {
    errno = EIO;
    return -1;
  }
  if (faults.short_reads && n > 1) {
    // Direct reads stay aligned (a real short direct read is whole blocks).
    const std::size_t half = direct ? std::max<std::size_t>(kAlign, n / 2 / kAlign * kAlign) : n / 2;
    n = std::min(n, half);
  }
  return ::pread(fd, buf, n, static_cast<off_t>(off));
}

struct ChunkRead {
  long long got = 0;  // bytes read: fewer than asked only at end of file; -1: `err`
  int err = 0;
  bool fell_back = false;  // a direct read was refused (EINVAL): the rest was read buffered
};

// Reads `n` bytes at `off` into `buf`, retrying EINTR and short reads, with
// `direct_fd` while it can (-1: none) and `buffered_fd` otherwise: once a
// direct read is refused (EINVAL) or a short one leaves an unaligned
// position, the rest goes through the buffered descriptor, which takes any
// offset. REQUIRES with direct_fd: off, n and buf aligned to kAlign.
ChunkRead read_chunk(int direct_fd, int buffered_fd, std::byte* buf, std::size_t n,
                     std::uint64_t off, const ReadFaults& faults) {
  ChunkRead r;
  std::size_t done = 0;
  bool direct = direct_fd >= 0;
  while (done < n) {
    // A short direct read ends unaligned only at end of file: the
    // buffered descriptor confirms it (or reads on, whatever the offset).
    if (direct && done % kAlign != 0) direct = false;
    const ssize_t got = faulty_pread(direct ? direct_fd : buffered_fd, buf + done, n - done,
                                     off + done, direct, faults);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct) {
        direct = false;
        r.fell_back = true;
        continue;
      }
      r.got = -1;
      r.err = errno;
      return r;
    }
    if (got == 0) break;  // end of file
    done += static_cast<std::size_t>(got);
  }
  r.got = static_cast<long long>(done);
  return r;
}

Status read_failed(const std::string& label, std::uint64_t offset, int err) {
  return Status(Errc::file_unreadable, label + ": read failed at offset " + std::to_string(offset) +
                                           ": " + errno_text(err));
}

Status file_shrank(const std::string& label, std::uint64_t ended_at) {
  return Status(Errc::file_changed, label + " ended at offset " + std::to_string(ended_at) +
                                        " while its tensors were copied (file shrank)");
}

// The page cache's share of a file range, through cachestat(2) (Linux 6.5):
// the number of its pages cached, or -1 where the call is unknown.
long long cached_pages(int fd, std::uint64_t offset, std::uint64_t length) {
#if defined(__x86_64__) || defined(__aarch64__)
  constexpr long kCachestat = 451;  // the same number in both tables
  struct Range {
    std::uint64_t off, len;
  } range{offset, length};
  struct Stat {
    std::uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } st{};
  if (::syscall(kCachestat, fd, &range, &st, 0) == 0) return static_cast<long long>(st.nr_cache);
#else
  (void)fd, (void)offset, (void)length;
#endif
  return -1;
}

// Maps the destination's pages ahead of the copy, on a thread of its own:
// MADV_POPULATE_WRITE makes the page tables of a step in one call instead
// of one fault per 4 KiB page inside the copy, and on its own thread that
// work (about a quarter of a fill's time into a fresh window, measured on
// 512 MiB) overlaps the reads and the copy. Best effort: where the call is
// unknown or fails, the copy faults the pages in itself; a page populated
// twice or written before it is populated is simply skipped by the kernel.
class Populator {
 public:
  static constexpr std::uint64_t kStep = 2u << 20;

  Populator(std::byte* out, std::uint64_t length) {
#ifdef MADV_POPULATE_WRITE
    if (length < 2 * kStep) return;
    // A thread that cannot start (the worker's address-space limit,
    // --worker-memory-limit) leaves the copy to fault the pages in itself.
    try {
      start(out, length);
    } catch (const std::system_error&) {
    }
#else
    (void)out, (void)length;
#endif
  }
  ~Populator() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }
  Populator(const Populator&) = delete;
  Populator& operator=(const Populator&) = delete;

 private:
  void start(std::byte* out, std::uint64_t length) {
#ifdef MADV_POPULATE_WRITE
    thread_ = std::thread([this, out, length] {
      const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
      // Whole pages inside the range only: the pages at its ends may be
      // shared with a neighbouring part's range.
      const std::uintptr_t first = (reinterpret_cast<std::uintptr_t>(out) + page - 1) / page * page;
      const std::uintptr_t last = (reinterpret_cast<std::uintptr_t>(out) + length) / page * page;
      for (std::uintptr_t at = first; at < last && !stop_.load(std::memory_order_relaxed);
           at += kStep) {
        if (::madvise(reinterpret_cast<void*>(at), std::min<std::uintptr_t>(kStep, last - at),
                      MADV_POPULATE_WRITE) != 0) {
          return;
        }
      }
    });
#else
    (void)out, (void)length;
#endif
  }

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A new open file description of `fd`'s file with `flags`, through the
// magic link, which reopens the descriptor's own inode: no path is
// resolved, so no rename or symlink can put another file here. Invalid
// where it cannot (no /proc; EINVAL for O_DIRECT on a file system without
// it) or the inode is not the same.
Fd reopen(int fd, int flags) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  Fd again(::open(self.c_str(), flags | O_CLOEXEC | O_NONBLOCK));
  if (!again.valid()) return Fd();
  struct stat a {}, b {};
  if (::fstat(fd, &a) != 0 || ::fstat(again.get(), &b) != 0 || a.st_dev != b.st_dev ||
      a.st_ino != b.st_ino) {
    return Fd();
  }
  return again;
}

// The alignment O_DIRECT needs of a buffer's address for `fd`'s file
// (statx STATX_DIOALIGN, Linux 6.1), a power of two up to kAlign; kAlign
// where the kernel or the file system does not say.
std::uint64_t dio_mem_align(int fd) {
#ifdef STATX_DIOALIGN
  struct statx st {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 && (st.stx_mask & STATX_DIOALIGN) != 0) {
    const std::uint64_t align = st.stx_dio_mem_align;
    if (align > 0 && align <= kAlign && (align & (align - 1)) == 0) return align;
  }
#else
  (void)fd;
#endif
  return kAlign;
}

// Whether `fd`'s file system's direct reads wait for their transfer to
// end uninterruptibly: ext4, XFS and btrfs (all through iomap). Only there
// does a direct read go straight into the arena. A worker killed mid-read
// then exits, and is reaped (after which the supervisor gives its range to
// another load), only once the device has finished writing into the range.
// Elsewhere (NFS waits killably, FUSE may answer late) a transfer could
// outlive the worker and land in a range that is already another adapter's:
// there the chunk goes through the worker's own bounce buffer.
bool transfers_end_before_exit(int fd) {
  constexpr long kExt4 = 0xEF53, kXfs = 0x58465342, kBtrfs = 0x9123683E;
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  const long type = static_cast<long>(fs.f_type);
  return type == kExt4 || type == kXfs || type == kBtrfs;
}

struct FreeAligned {
  void operator()(std::byte* p) const { std::free(p); }
};

}  // namespace

RangeReader::RangeReader(int fd, std::string label, ReadOptions options)
    : fd_(fd), label_(std::move(label)), options_(options), own_fd_(reopen(fd, O_RDONLY)) {
  ::posix_fadvise(buffered_fd(), 0, 0, POSIX_FADV_SEQUENTIAL);
}

RangeReader::~RangeReader() = default;

Status RangeReader::read(std::uint64_t offset, std::uint64_t length, std::byte* out,
                         const Sink& sink) {
  const Populator populate(out, length);  // joined before the range is handed back
  if (want_direct(offset, length) && open_direct()) {
    last_mode_ = ReadMode::direct;
    return read_direct(offset, length, out, sink);
  }
  last_mode_ = ReadMode::buffered;
  return read_buffered(offset, length, out, sink);
}

bool RangeReader::want_direct(std::uint64_t offset, std::uint64_t length) {
  if (direct_failed_ || options_.direct_below_cached <= 0 || length < options_.direct_min)
    return false;
  if (options_.direct_below_cached > 1) return true;
  const long long cached = cached_pages(fd_, offset, length);
  if (cached < 0) return false;  // unknown: read as before, through the page cache
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const double pages = static_cast<double>(round_up(length, page) / page);
  return static_cast<double>(cached) < options_.direct_below_cached * pages;
}

bool RangeReader::open_direct() {
  if (direct_fd_.valid()) return true;
  if (direct_failed_) return false;
  direct_failed_ = true;  // until proven otherwise
  if (options_.faults.no_direct) return false;
  Fd direct = reopen(fd_, O_RDONLY | O_DIRECT);
  if (!direct.valid()) return false;  // EINVAL: no O_DIRECT here; no /proc: likewise buffered
  direct_mem_align_ = dio_mem_align(direct.get());
  direct_in_place_ = transfers_end_before_exit(direct.get());
  direct_fd_ = std::move(direct);
  direct_failed_ = false;
  return true;
}

Status RangeReader::read_buffered(std::uint64_t offset, std::uint64_t length, std::byte* out,
                                  const Sink& sink) {
  // Ranges of a few pieces are hashed inline: a thread costs more than the
  // overlap wins there.
  HashBehind hasher(sink, length >= kHashBehindMin);
  for (std::uint64_t done = 0; done < length;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kBufferedChunk, length - done));
    const ChunkRead r =
        read_chunk(-1, buffered_fd(), out + done, want, offset + done, options_.faults);
    if (r.got < 0) return read_failed(label_, offset + done, r.err);
    if (static_cast<std::size_t>(r.got) != want) return file_shrank(label_, offset + done + r.got);
    hasher.add(std::span<const std::byte>(out + done, want));
    done += want;
  }
  hasher.finish();
  return Status::Ok();
}

// Chunk i covers the file's [begin + i*C, begin + (i+1)*C), begin aligned
// down from `offset`. Each reader thread takes the next chunk nobody took,
// reads it into its own bounce buffer and copies the range's part of it
// into `out` itself, so the copies run on every core; this thread hashes
// the chunks in order, each as soon as it is in place. Chunks are handed
// out as readers free up rather than striped over them in advance: one
// slow read (a virtual disk answered one 4 MiB read in 31 ms while its
// neighbours took 3-4) then holds back only its own chunk, where a striped
// reader owed its other chunks too, read one at a time after the rest had
// finished. A chunk that fails ends the handing out there; the first failure
// in chunk order is the read's result.
Status RangeReader::read_direct(std::uint64_t offset, std::uint64_t length, std::byte* out,
                                const Sink& sink) {
  const std::uint64_t begin = offset / kAlign * kAlign;
  const std::uint64_t end = offset + length;
  const std::size_t chunk = static_cast<std::size_t>(
      std::max<std::uint64_t>(kAlign, round_up(options_.direct_chunk, kAlign)));
  const std::uint64_t chunks = (end - begin + chunk - 1) / chunk;
  const auto readers = static_cast<std::size_t>(
      std::clamp<std::uint64_t>(static_cast<std::uint64_t>(options_.direct_in_flight), 1, chunks));
  std::unique_ptr<std::byte, FreeAligned> buffers(
      static_cast<std::byte*>(std::aligned_alloc(kAlign, readers * chunk)));
  if (!buffers) return read_buffered(offset, length, out, sink);

  enum class ChunkState : std::uint8_t { pending, ready, failed };  // ready: its bytes are in `out`
  std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu. Invariants: chunks [0, next) were handed out, each to one
  // reader, in order; no chunk from `limit` on is handed out (a failure
  // before it, or the read is over); failures[i] is set iff state[i] is
  // `failed`.
  std::vector<ChunkState> state(chunks, ChunkState::pending);
  std::vector<std::optional<Status>> failures(chunks);
  std::uint64_t next = 0;
  std::uint64_t limit = chunks;
  std::vector<bool> fell_back(readers, false);

  // The destination of file byte x is out + (x - offset): a chunk's start
  // (kAlign-aligned in the file) lands on an address aligned for O_DIRECT
  // iff out - offset is, modulo the device's alignment.
  const std::uint64_t align = direct_mem_align_;
  const bool congruent =
      direct_in_place_ &&
      (reinterpret_cast<std::uintptr_t>(out) % align + align - offset % align) % align == 0;
  std::uint64_t in_place_bytes = 0;  // guarded by mu

  const auto reader = [&](std::size_t t) {
    std::byte* buf = buffers.get() + t * chunk;
    for (;;) {
      std::uint64_t i = 0;
      {
        std::lock_guard lock(mu);
        if (next >= limit) return;
        i = next++;
      }
      const std::uint64_t at = begin + i * chunk;
      const std::uint64_t from = std::max(offset, at);  // the range's first byte in this chunk
      const std::uint64_t to = std::min(end, at + chunk);
      const auto want = static_cast<std::size_t>(round_up(to - at, kAlign));
      // Wholly inside the range: nothing around it to overwrite.
      const bool in_place = congruent && at >= offset && at + chunk <= end;
      std::byte* into = in_place ? out + (at - offset) : buf;
      const ChunkRead r = read_chunk(direct_fd_.get(), buffered_fd(), into, want, at, options_.faults);
      std::optional<Status> failed;
      if (r.got < 0) {
        failed = read_failed(label_, at, r.err);
      } else if (at + static_cast<std::uint64_t>(r.got) < to) {
        failed = file_shrank(label_, at + static_cast<std::uint64_t>(r.got));
      } else if (!in_place) {
        std::memcpy(out + (from - offset), buf + (from - at), to - from);
      }
      {
        std::lock_guard lock(mu);
        if (in_place && !failed) in_place_bytes += want;
        fell_back[t] = fell_back[t] || r.fell_back;
        if (failed) {
          state[i] = ChunkState::failed;
          failures[i] = std::move(failed);
          limit = std::min(limit, i + 1);
        } else {
          state[i] = ChunkState::ready;
        }
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(readers);
  // Stops the handing out and joins the readers on every way out.
  const auto stop_readers = [&] {
    {
      std::lock_guard lock(mu);
      limit = 0;
    }
    for (std::thread& th : threads) th.join();
    threads.clear();
  };
  struct Join {
    const decltype(stop_readers)& stop;
    ~Join() { stop(); }
  } join{stop_readers};
  try {
    for (std::size_t t = 0; t < readers; ++t) threads.emplace_back(reader, t);
  } catch (const std::system_error&) {
    // No room for another thread (the worker's address-space limit,
    // --worker-memory-limit): stop the readers that started, then read the
    // whole range buffered, over whatever they copied.
    stop_readers();
    ++fallbacks_;
    return read_buffered(offset, length, out, sink);
  }

  for (std::uint64_t i = 0; i < chunks; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return state[i] != ChunkState::pending; });
      if (state[i] == ChunkState::failed) return *failures[i];
    }
    const std::uint64_t from = std::max(offset, begin + i * chunk) - offset;
    const std::uint64_t to = std::min(end, begin + (i + 1) * chunk) - offset;
    for (std::uint64_t at = from; at < to; at += kBufferedChunk) {
      sink(std::span<const std::byte>(out + at, std::min<std::uint64_t>(kBufferedChunk, to - at)));
    }
  }
  stop_readers();
  for (const bool f : fell_back) fallbacks_ += f ? 1 : 0;
  in_place_bytes_ += in_place_bytes;
  return Status::Ok();
}

}  // namespace genomed::format
