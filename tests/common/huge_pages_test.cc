// Huge pages for the arena (common/huge_pages.h): the host's shmem policy
// read from its sysfs text, and the arena's mappings: exact bytes and size
// whatever the policy, 2 MiB-aligned wherever huge pages are possible.
#include "common/huge_pages.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

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
  if (shmem_huge_pages_possible(shmem_huge_pages())) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes, 0u);
  }
  EXPECT_EQ(::munmap(p, kSize), 0);
}

}  // namespace
}  // namespace genomed
