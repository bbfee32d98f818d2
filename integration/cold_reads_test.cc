// How a load reads a weights file that is not in the page cache (genomed
// --cold-reads, issue 24), with the real daemon and workers. Direct reads
// (the default) go around the page cache: the file stays uncached (only the
// probe's header pages come in). Buffered reads go through it: afterwards
// the file is cached, as after any read. Either way the lease holds the file's
// exact bytes and they verify. What a user sees of the choice is what the
// page cache holds afterwards, so that is what these tests check.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/fd.h"
#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

// 32 MiB of weights in one fill part: well above the reader's 8 MiB minimum
// for direct reads.
const fixture::AdapterSpec kSpec{.rank = 64, .layers = 16, .hidden = 4096};

struct CachedPages {
  std::uint64_t cached = 0;
  std::uint64_t total = 0;
};

// How many of the file's pages the page cache holds (mincore of a mapping).
CachedPages cached_pages(const std::string& path) {
  CachedPages r;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || st.st_size == 0) {
    ADD_FAILURE() << "cannot open " << path;
    return r;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    ADD_FAILURE() << "cannot map " << path;
    return r;
  }
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  if (::mincore(p, size, resident.data()) == 0) {
    for (const unsigned char c : resident) r.cached += c & 1u;
    r.total = resident.size();
  } else {
    ADD_FAILURE() << "mincore of " << path;
  }
  ::munmap(p, size);
  return r;
}

// Writes the file back and drops it from the page cache; fails the test if a
// page stays (a tmpfs, whose pages are the file, cannot drop them).
void drop_from_page_cache(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_EQ(::fsync(fd.get()), 0);
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
  ASSERT_EQ(cached_pages(path).cached, 0u) << path << " stayed in the page cache";
}

// Whether the file's file system takes O_DIRECT reads (tmpfs does not).
bool takes_direct_io(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  return fd.valid();
}

// Loads "cold" with its weights dropped from the page cache; returns what
// the page cache holds of them afterwards.
CachedPages load_cold(const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--fill-parts", "1"};
  all.insert(all.end(), args.begin(), args.end());
  Daemon daemon({.budget_bytes = 128ull << 20, .extra_args = all});
  const std::string weights = daemon.add_adapter("cold", kSpec) + "/adapter_model.safetensors";
  drop_from_page_cache(weights);
  Client client = daemon.connect();
  auto lease = client.acquire("cold");
  EXPECT_TRUE(lease.ok()) << lease.status().to_string() << "\n" << daemon.log();
  if (!lease.ok()) return {};
  const CachedPages after = cached_pages(weights);  // before the comparison reads the file
  expect_file_bytes(*lease, weights);
  EXPECT_TRUE(lease->verify().ok());
  return after;
}

TEST(ColdReads, WithBufferedColdReadsAColdFileIsReadThroughThePageCache) {
  const CachedPages after = load_cold({"--cold-reads", "buffered"});
  ASSERT_GT(after.total, 8000u);  // 32 MiB
  EXPECT_GT(after.cached, after.total * 9 / 10) << after.cached << " of " << after.total;
}

TEST(ColdReads, ByDefaultAColdFileIsReadAroundThePageCache) {
  {
    Daemon probe_dir;  // the same kind of directory the next daemon gets
    const std::string weights =
        probe_dir.add_adapter("x", {.rank = 8, .layers = 1, .hidden = 64}) +
        "/adapter_model.safetensors";
    if (!takes_direct_io(weights)) {
      GTEST_SKIP() << "the test directory's file system (" << probe_dir.dir()
                   << ") refuses O_DIRECT: set TMPDIR to a disk file system";
    }
  }
  const CachedPages after = load_cold({});
  ASSERT_GT(after.total, 8000u);
  // The probe reads the header (a few pages) through the cache; the fill
  // reads around it.
  EXPECT_LT(after.cached, after.total / 20) << after.cached << " of " << after.total;
}

}  // namespace
}  // namespace genomed::testing
