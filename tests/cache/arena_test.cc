// Properties of the shared-memory arena: size and reservation, no name left
// behind, a read-only descriptor that cannot be made writable, stale segments
// of dead daemons removed, and descriptor ownership.
#include "cache/arena.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

TEST(Arena, NameIsRemovedAfterCreate) {
  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  EXPECT_TRUE(ShmNamesWithPrefix(Prefix()).empty());
  struct stat st {};
  ASSERT_EQ(::fstat(arena->ro_fd(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
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

TEST(Arena, TooLargeForDevShmFailsWithNoSpace) {
  struct statvfs fs {};
  ASSERT_EQ(::statvfs("/dev/shm", &fs), 0);
  const std::uint64_t free_bytes = std::uint64_t{fs.f_bavail} * fs.f_frsize;
  auto arena = Arena::create(free_bytes + (1ull << 30), Prefix());
  ASSERT_FALSE(arena.ok());
  EXPECT_EQ(arena.code(), Errc::no_space);
  EXPECT_NE(arena.status().message().find("--shm-size"), std::string::npos)
      << arena.status().message();
  EXPECT_NE(arena.status().message().find("--budget"), std::string::npos);
  EXPECT_TRUE(ShmNamesWithPrefix(Prefix()).empty());
}

TEST(Arena, ZeroSizeIsBadRequest) {
  EXPECT_EQ(Arena::create(0, Prefix()).code(), Errc::bad_request);
}

TEST(Arena, PrefixWithSlashIsBadRequest) {
  EXPECT_EQ(Arena::create(kSize, "a/b").code(), Errc::bad_request);
  EXPECT_EQ(Arena::create(kSize, "").code(), Errc::bad_request);
}

TEST(Arena, StaleSegmentsOfDeadPidsAreRemoved) {
  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);  // reaped: kill(child, 0) gives ESRCH

  const std::string stale = Prefix() + std::to_string(child) + "-0123456789abcdef";
  const std::string live = Prefix() + std::to_string(::getpid()) + "-0123456789abcdef";
  const std::string other = Prefix() + "notapid";
  for (const std::string& name : {stale, live, other}) {
    const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    ASSERT_NE(fd, -1) << name << ": " << std::strerror(errno);
    ::close(fd);
  }

  auto arena = Arena::create(kSize, Prefix());
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  const auto left = ShmNamesWithPrefix(Prefix());
  ::shm_unlink(("/" + live).c_str());
  ::shm_unlink(("/" + other).c_str());
  ::shm_unlink(("/" + stale).c_str());
  EXPECT_EQ(std::count(left.begin(), left.end(), stale), 0);
  EXPECT_EQ(std::count(left.begin(), left.end(), live), 1) << "a live daemon's segment was removed";
  EXPECT_EQ(std::count(left.begin(), left.end(), other), 1);
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
