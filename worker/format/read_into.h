// The fill's reader: copies a range of an adapter's weights file into the
// arena and hands each piece to the caller (the checksums) right after it is
// written, while it is still in the CPU's cache: one pass over the bytes.
//
// Two ways to read, chosen per range (issue 24):
//  - buffered: pread from the page cache in kBufferedChunk pieces straight
//    into the destination. The right way when the file is cached: memcpy
//    speed, nothing to wait for. For uncached files (genomed --cold-reads
//    buffered) it leans on the kernel's readahead, which was as fast as the
//    direct reads below in a clean loop but fell to synchronous 512 KiB
//    reads (0.5 GB/s) in genome-bench's runs (docs/performance.md, "Cold
//    reads: direct or buffered").
//  - direct (the default, ReadOptions::direct_below_cached):
//    when most of the range is not in the page cache (cachestat), the file
//    is reopened with O_DIRECT (through /proc/self/fd, so it is the very
//    inode the supervisor opened and leased, never a path lookup) and read
//    in large aligned chunks, several in flight (one thread per bounce
//    buffer, which takes the next chunk nobody took and copies it into
//    place, so the copies use every core), each chunk hashed in order once
//    it is in place. It leaves
//    the page cache as it was, and keeps a device's queue deeper than one
//    readahead stream does.
// A direct chunk that lies wholly inside the range is read straight into
// the destination, without the bounce buffer and its copy, where the
// destination's address has the file offset's alignment modulo the device's
// DMA alignment (statx STATX_DIOALIGN). On NVMe (alignment 4) that holds for
// every resident layout of an 8-byte aligned file; on the project VM's
// virtio disk (512) only where the layout happens to match the file mod 512,
// which a 64-byte aligned layout does not promise (docs/performance.md);
// and only on file systems whose direct reads a kill cannot cut short
// (ext4, XFS, btrfs), so that no transfer outlives a killed worker.
// Direct reads fall back to buffered ones whenever the file system refuses
// them (the O_DIRECT open or a read answers EINVAL), for the whole range or
// the chunk concerned. Either way the bytes land in the destination exactly
// as a pread would give them, so validation, checksums and the supervisor's
// file identity / read lease checks are unchanged: the descriptor the
// supervisor passed is never moved, and its flags are never changed (the
// O_DIRECT descriptor is a description of the worker's own).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/fd.h"
#include "common/status.h"

namespace genomed::format {

// Copy-then-hash granularity of buffered reads: small enough that a piece
// is still in L2 when it is hashed, large enough that the pread's own cost
// vanishes (earlier: 8 MiB pieces, hashed from L3 or memory).
inline constexpr std::size_t kBufferedChunk = 512u << 10;

// Buffered ranges from this size up are hashed on a second thread right
// behind the copy (worker/format/hash_behind.h); shorter ones inline.
inline constexpr std::uint64_t kHashBehindMin = 4u << 20;

// Test-only failures of the reader's reads (genome-worker --fault
// ACTION@read maps onto these), so its error paths run for real.
struct ReadFaults {
  bool no_direct = false;    // the O_DIRECT open fails with EINVAL (as on a file system without it)
  bool short_reads = false;  // every read returns about half of what was asked (never 0)
  bool eio = false;          // every data read fails with EIO (a failing disk)
  // Unit tests only: called with each data read's file offset before the
  // read (from the reading thread), to hold one read back.
  std::function<void(std::uint64_t)> before_read;
};

// Direct reads for a range of which less than half is cached: a mostly
// cached range is read faster from the cache than from the device.
inline constexpr double kDirectBelowCached = 0.5;

struct ReadOptions {
  // Direct reads: one read's size (a multiple of 4 KiB) and how many are in
  // flight at once (threads, each with its own bounce buffer). 4 x 1 MiB is
  // the virtual disk's best shape in genome-bench's device search, and in
  // the profile loop of a dropped 128 MiB adapter it gave 2.9-3.2 GB/s
  // against 2.3-2.5 for 4 x 4 MiB (docs/performance.md).
  std::size_t direct_chunk = 1u << 20;
  int direct_in_flight = 4;
  // Ranges shorter than this are read buffered whatever the cache holds:
  // starting the readers costs more than they win.
  std::uint64_t direct_min = 8u << 20;
  // Direct reads are used when less than this fraction of the range's pages
  // are in the page cache. 0 turns direct reads off (genomed --cold-reads
  // buffered); above 1, always direct (tests).
  double direct_below_cached = kDirectBelowCached;
  ReadFaults faults;
};

enum class ReadMode { buffered, direct };

class RangeReader {
 public:
  // `fd`: the weights file, open for reading (shared with other processes:
  // read with pread only). `label` names it in messages.
  RangeReader(int fd, std::string label, ReadOptions options = {});
  ~RangeReader();
  RangeReader(const RangeReader&) = delete;
  RangeReader& operator=(const RangeReader&) = delete;

  using Sink = std::function<void(std::span<const std::byte>)>;

  // Copies the file's bytes [offset, offset + length) to out[0, length),
  // calling `sink` with each piece of `out`, in order, right after it is
  // written. Errc::file_unreadable (naming the file, the offset and the
  // cause) when a read fails; Errc::file_changed when the file ends before
  // offset + length (it shrank). On error `out` may hold part of the range.
  Status read(std::uint64_t offset, std::uint64_t length, std::byte* out, const Sink& sink);

  // How the last read() read (tests, logs).
  ReadMode last_mode() const { return last_mode_; }
  // How many reader threads had a direct read refused (EINVAL) and read
  // buffered instead, over this reader's life.
  std::uint64_t buffered_fallbacks() const { return fallbacks_; }
  // Bytes direct reads put straight into the destination, without a bounce
  // copy, over this reader's life (tests, logs).
  std::uint64_t bytes_read_in_place() const { return in_place_bytes_; }

 private:
  bool want_direct(std::uint64_t offset, std::uint64_t length);
  bool open_direct();
  Status read_buffered(std::uint64_t offset, std::uint64_t length, std::byte* out,
                       const Sink& sink);
  Status read_direct(std::uint64_t offset, std::uint64_t length, std::byte* out, const Sink& sink);

  // Buffered reads go through own_fd_ where it could be opened, else fd_.
  int buffered_fd() const { return own_fd_.valid() ? own_fd_.get() : fd_; }

  const int fd_;
  const std::string label_;
  const ReadOptions options_;
  // A description of fd_'s file of this reader's own. The kernel keeps
  // readahead state per open file description, and fd_'s is shared by the
  // supervisor and every worker filling a part of the adapter at once: parts
  // read through it together look like random reads to it, and readahead of
  // a cold file stops (measured: two workers loading a dropped 128 MiB
  // file at half the rate of one).
  const Fd own_fd_;
  Fd direct_fd_;               // O_DIRECT description of fd_'s file; invalid until opened
  // The alignment O_DIRECT needs of a destination address on this file's
  // device (statx STATX_DIOALIGN: 512 on the project VM's virtio disk, 4 on
  // NVMe); 4096 where the kernel does not say. Set with direct_fd_.
  std::uint64_t direct_mem_align_ = 4096;
  // Direct reads may go straight into the destination: the file system's
  // transfers end before a killed worker can exit (read_into.cc). Set with
  // direct_fd_.
  bool direct_in_place_ = false;
  bool direct_failed_ = false;  // the O_DIRECT open failed: buffered from now on
  ReadMode last_mode_ = ReadMode::buffered;
  std::uint64_t fallbacks_ = 0;
  std::uint64_t in_place_bytes_ = 0;
};

}  // namespace genomed::format
