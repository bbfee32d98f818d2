// Properties of the shared-memory arena: size and reservation, no name
// anyone could open, a size sealed against truncation, a read-only
// descriptor that cannot be made writable, and descriptor ownership.
#include "cache/arena.h"

#include "common/huge_pages.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace genomed::cache {
namespace {

// Unique per test process, so parallel runs never see each other's segments.
std::string Prefix() { return "genomed-test-" + std::to_string(::getpid()) + "-"; }

std::vector<std::string> ShmNamesWithPrefix(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    if (std::string_view(e->d_name).starts_with(prefix)) out.emplace_back(e->d_name);
  }
  ::closedir(dir);
  return out;
}

bool FdIsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

constexpr std::uint64_t kSize = 4 << 20;

TEST(Arena, CreatesSegmentOfRequestedSize) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  EXPECT_EQ(arena->size(), kSize);
  ASSERT_NE(arena->data(), nullptr);
  for (int fd : {arena->rw_fd(), arena->ro_fd()}) {
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kSize);
    // posix_fallocate reserved the pages: tmpfs counts them as allocated.
    EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, kSize);
  }
  EXPECT_EQ(arena->data()[0], std::byte{0});
  EXPECT_EQ(arena->data()[kSize - 1], std::byte{0});
}

TEST(Arena, HasNoNameAnyoneCouldOpen) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  EXPECT_TRUE(ShmNamesWithPrefix(Prefix()).empty());
  struct stat st {};
  ASSERT_EQ(::fstat(arena->ro_fd(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  // People and tests find it by this name in /proc/PID/fd and maps.
  char link[256] = {};
  const std::string fd_path = "/proc/self/fd/" + std::to_string(arena->ro_fd());
  ASSERT_GT(::readlink(fd_path.c_str(), link, sizeof link - 1), 0);
  EXPECT_EQ(std::string(link).rfind("/memfd:" + Prefix() + std::to_string(::getpid()), 0), 0u)
      << link;
}

// The SIGBUS attack of issue 9: a process that reopens the arena writable
// (here through /proc/self/fd, as root, which bypasses the 0400 mode) and
// truncates it would kill every process mapping it. The seals forbid it for
// everyone, and cannot be lifted.
TEST(Arena, SizeIsSealedAgainstEveryone) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  for (int fd : {arena->rw_fd(), arena->ro_fd()}) {
    EXPECT_EQ(::fcntl(fd, F_GET_SEALS), Arena::kSeals);
  }
  EXPECT_NE(::ftruncate(arena->rw_fd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(arena->rw_fd(), 2 * kSize), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::fcntl(arena->rw_fd(), F_ADD_SEALS, F_SEAL_WRITE), 0);  // F_SEAL_SEAL
  struct stat st {};
  ASSERT_EQ(::fstat(arena->rw_fd(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kSize);
  EXPECT_EQ(arena->data()[kSize - 1], std::byte{0});  // still mapped, no SIGBUS
}

// A client of another uid holds only the read-only descriptor; a memfd's
// default mode 0777 would let it reopen that writable through /proc/self/fd.
TEST(Arena, AnotherUidCannotReopenTheReadOnlyDescriptorWritable) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  struct stat st {};
  ASSERT_EQ(::fstat(arena->ro_fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another uid (CI runs as root)";
  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const std::string self = "/proc/self/fd/" + std::to_string(arena->ro_fd());
    const int fd = ::open(self.c_str(), O_RDWR);
    ::_exit(fd == -1 && errno == EACCES ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the other uid reopened it writable; 2: setuid failed";
}

TEST(Arena, ReadOnlyFdCannotBeMappedWritable) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  EXPECT_EQ(::fcntl(arena->ro_fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  errno = 0;
  void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, arena->ro_fd(), 0);
  EXPECT_EQ(p, MAP_FAILED);
  EXPECT_EQ(errno, EACCES);
  if (p != MAP_FAILED) ::munmap(p, kSize);
}

TEST(Arena, WritesThroughRwFdVisibleThroughData) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, arena->rw_fd(), 0);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  auto* bytes = static_cast<unsigned char*>(p);
  for (std::uint64_t i = 0; i < kSize; i += 4093) bytes[i] = static_cast<unsigned char>(i % 251);
  ::munmap(p, kSize);
  for (std::uint64_t i = 0; i < kSize; i += 4093) {
    ASSERT_EQ(arena->data()[i], std::byte(i % 251)) << i;
  }
}

TEST(Arena, PrefaultPreservesContents) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  ASSERT_EQ(::pwrite(arena->rw_fd(), "genome", 6, kSize / 2), 6);
  arena->prefault();
  EXPECT_EQ(std::memcmp(arena->data() + kSize / 2, "genome", 6), 0);
  EXPECT_EQ(arena->data()[0], std::byte{0});
}

// The kB a mapping at `addr` maps with PMDs (huge pages), from /proc/self/smaps.
long ShmemPmdMappedKb(const void* addr) {
  char start[32];
  std::snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(addr));
  std::ifstream smaps("/proc/self/smaps");
  bool in_mapping = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.starts_with(start)) in_mapping = true;
    if (in_mapping && line.starts_with("ShmemPmdMapped:")) return std::stol(line.substr(15));
  }
  return -1;
}

TEST(Arena, PrefaultCollapsesEveryPageIntoHugePagesUnlessTheHostDeniesThem) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  ASSERT_EQ(::pwrite(arena->rw_fd(), "genome", 6, kSize / 2), 6);
  const std::uint64_t huge = arena->prefault();
  EXPECT_EQ(std::memcmp(arena->data() + kSize / 2, "genome", 6), 0);
  if (!huge_pages_collapsible()) {
    EXPECT_EQ(huge, 0u);
    return;
  }
  EXPECT_EQ(huge, kSize) << "shmem_enabled " << shmem_huge_pages_name(shmem_huge_pages());
  // A client's mapping of it (2 MiB-aligned) maps the pages whole.
  void* p = map_shared_aligned(arena->ro_fd(), kSize, PROT_READ);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  const volatile auto* bytes = static_cast<const unsigned char*>(p);
  for (std::uint64_t i = 0; i < kSize; i += 4096) (void)bytes[i];
  EXPECT_EQ(ShmemPmdMappedKb(p), static_cast<long>(kSize / 1024));
  ::munmap(p, kSize);
}

TEST(Arena, MoreThanTheHostsMemoryFailsWithNoSpaceBeforeAllocating) {
  std::ifstream meminfo("/proc/meminfo");
  std::uint64_t total_kib = 0;
  for (std::string key; meminfo >> key;) {
    if (key == "MemTotal:") {
      meminfo >> total_kib;
      break;
    }
  }
  ASSERT_GT(total_kib, 0u);
  auto arena = Arena::create(total_kib * 1024 + (1ull << 30), Prefix());
  ASSERT_FALSE(arena.ok());
  EXPECT_EQ(arena.code(), Errc::no_space);
  EXPECT_NE(arena.status().message().find("--budget"), std::string::npos)
      << arena.status().message();
}

TEST(Arena, ZeroSizeIsBadRequest) {
  EXPECT_EQ(Arena::create(0, Prefix()).code(), Errc::bad_request);
}

TEST(Arena, PrefixWithSlashIsBadRequest) {
  EXPECT_EQ(Arena::create(kSize, "a/b").code(), Errc::bad_request);
  EXPECT_EQ(Arena::create(kSize, "").code(), Errc::bad_request);
}

TEST(Arena, MoveTransfersOwnership) {
  auto created = Arena::create(kSize, Prefix());
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  const int rw = created->rw_fd(), ro = created->ro_fd();
  const std::byte* data = created->data();

  Arena moved(std::move(*created));
  EXPECT_EQ(created->rw_fd(), -1);
  EXPECT_EQ(created->ro_fd(), -1);
  EXPECT_EQ(created->data(), nullptr);
  EXPECT_EQ(created->size(), 0u);
  EXPECT_EQ(moved.rw_fd(), rw);
  EXPECT_EQ(moved.ro_fd(), ro);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(moved.size(), kSize);

  auto second = Arena::create(kSize, Prefix());
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  const int old_rw = second->rw_fd(), old_ro = second->ro_fd();
  *second = std::move(moved);  // releases the second arena's descriptors
  EXPECT_FALSE(FdIsOpen(old_rw));
  EXPECT_FALSE(FdIsOpen(old_ro));
  EXPECT_EQ(second->rw_fd(), rw);
  EXPECT_EQ(second->data(), data);
  EXPECT_EQ(moved.rw_fd(), -1);
  EXPECT_TRUE(FdIsOpen(rw));
  EXPECT_EQ(second->data()[kSize - 1], std::byte{0});  // the mapping moved intact
}

TEST(Arena, DestructorClosesDescriptors) {
  int rw = -1, ro = -1;
  {
    auto arena = Arena::create(kSize, Prefix());
    ASSERT_TRUE(arena.ok()) << arena.status().to_string();
    rw = arena->rw_fd();
    ro = arena->ro_fd();
    EXPECT_TRUE(FdIsOpen(rw));
    EXPECT_TRUE(FdIsOpen(ro));
  }
  EXPECT_FALSE(FdIsOpen(rw));
  EXPECT_FALSE(FdIsOpen(ro));
}

TEST(Arena, DescriptorsAreCloseOnExec) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  EXPECT_TRUE(::fcntl(arena->rw_fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(arena->ro_fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(::fcntl(arena->rw_fd(), F_GETFL) & O_ACCMODE, O_RDWR);
}

}  // namespace
}  // namespace genomed::cache
