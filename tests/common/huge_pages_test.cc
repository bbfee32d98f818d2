// Huge pages for the arena (common/huge_pages.h): the host's shmem policy
// read from its sysfs text; the arena's mappings: exact bytes and size
// whatever the policy, 2 MiB-aligned from 2 MiB up; and a collapse into
// huge pages that keeps every byte.
#include "common/huge_pages.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace genomed {
namespace {

TEST(ShmemHugePages, TheBracketedChoiceIsThePolicy) {
  EXPECT_EQ(parse_shmem_enabled("always within_size advise [never] deny force\n"),
            ShmemHugePages::never);
  EXPECT_EQ(parse_shmem_enabled("always within_size [advise] never deny force\n"),
            ShmemHugePages::advise);
  EXPECT_EQ(parse_shmem_enabled("[always] within_size advise never deny force"),
            ShmemHugePages::always);
  EXPECT_EQ(parse_shmem_enabled("always [within_size] advise never deny force"),
            ShmemHugePages::within_size);
  EXPECT_EQ(parse_shmem_enabled("always within_size advise never [deny] force"),
            ShmemHugePages::deny);
  EXPECT_EQ(parse_shmem_enabled(""), ShmemHugePages::unknown);
  EXPECT_EQ(parse_shmem_enabled("always advise never"), ShmemHugePages::unknown);
  EXPECT_EQ(parse_shmem_enabled("[sometimes]"), ShmemHugePages::unknown);
  EXPECT_FALSE(shmem_huge_pages_possible(ShmemHugePages::never));
  EXPECT_FALSE(shmem_huge_pages_possible(ShmemHugePages::deny));
  EXPECT_FALSE(shmem_huge_pages_possible(ShmemHugePages::unknown));
  EXPECT_TRUE(shmem_huge_pages_possible(ShmemHugePages::advise));
}

TEST(ShmemHugePages, EachPolicyIsNamedAsTheKernelSpellsIt) {
  for (const char* name : {"never", "advise", "always", "within_size", "deny", "force"}) {
    const std::string text = std::string("[") + name + "]";
    EXPECT_EQ(shmem_huge_pages_name(parse_shmem_enabled(text)), name);
  }
  EXPECT_EQ(shmem_huge_pages_name(ShmemHugePages::unknown), "unknown");
}

TEST(ShmemHugePages, AnAlignedSharedMappingHoldsTheFileBytes) {
  constexpr std::size_t kSize = 6 * kHugePageBytes + 4096;
  const int fd = ::memfd_create("huge-pages-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kSize), 0);
  ASSERT_EQ(::pwrite(fd, "first", 5, 0), 5);
  ASSERT_EQ(::pwrite(fd, "last", 4, kSize - 4), 4);
  void* p = map_shared_aligned(fd, kSize, PROT_READ);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  const auto* bytes = static_cast<const char*>(p);
  EXPECT_EQ(std::memcmp(bytes, "first", 5), 0);
  EXPECT_EQ(std::memcmp(bytes + kSize - 4, "last", 4), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes, 0u);
  EXPECT_EQ(::munmap(p, kSize), 0);
}

TEST(ShmemHugePages, AMappingAtAnOffsetHoldsThatPartOfTheFile) {
  constexpr std::size_t kSize = 4 * kHugePageBytes;
  const int fd = ::memfd_create("huge-pages-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kSize), 0);
  ASSERT_EQ(::pwrite(fd, "third", 5, 2 * kHugePageBytes), 5);
  void* p = map_shared_aligned(fd, 2 * kHugePageBytes, PROT_READ, 2 * kHugePageBytes);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(p, "third", 5), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes, 0u);
  EXPECT_EQ(::munmap(p, 2 * kHugePageBytes), 0);
}

TEST(ShmemHugePages, ACollapseKeepsEveryByteAndZerosWhatWasNeverWritten) {
  constexpr std::size_t kSize = 4 * kHugePageBytes;
  const int fd = ::memfd_create("huge-pages-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kSize), 0);
  ASSERT_EQ(::posix_fallocate(fd, 0, kSize), 0);
  // Every 7th page written, the rest allocated but never written.
  std::vector<char> page(4096);
  for (std::size_t at = 0; at < kSize; at += 7 * page.size()) {
    std::memset(page.data(), static_cast<int>(1 + at / page.size() % 250), page.size());
    ASSERT_EQ(::pwrite(fd, page.data(), page.size(), static_cast<off_t>(at)),
              static_cast<ssize_t>(page.size()));
  }
  void* p = map_shared_aligned(fd, kSize, PROT_READ);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  EXPECT_EQ(collapse_to_huge_pages(p, kSize), huge_pages_collapsible())
      << "shmem_enabled " << shmem_huge_pages_name(shmem_huge_pages());
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t at = 0; at < kSize; at += page.size()) {
    const bool written = at % (7 * page.size()) == 0;
    const unsigned char want = written ? static_cast<unsigned char>(1 + at / page.size() % 250) : 0;
    ASSERT_EQ(bytes[at], want) << at;
    ASSERT_EQ(bytes[at + page.size() - 1], want) << at;
  }
  EXPECT_EQ(::munmap(p, kSize), 0);
}

}  // namespace
}  // namespace genomed
