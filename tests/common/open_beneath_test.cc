// open_beneath: a path opened beneath a directory descriptor never follows a
// symlink (at any component, even one pointing inside), never climbs with
// `..`, and is never absolute; by openat2 and by the fallback walk alike.
#include "common/open_beneath.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace genomed {
namespace {

namespace fs = std::filesystem;

class OpenBeneath : public ::testing::TestWithParam<BeneathResolution> {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/genomed-beneath-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    tmp_ = templ;
    fs::create_directories(root() + "/a/b/c");
    fs::create_directories(tmp_ + "/outside/b/c");
    write(root() + "/a/b/c/file", "inside");
    write(tmp_ + "/outside/b/c/file", "outside");
    write(tmp_ + "/outside/file", "outside");
    root_fd_ = ::open(root().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
  }
  void TearDown() override {
    if (root_fd_ >= 0) ::close(root_fd_);
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  std::string root() const { return tmp_ + "/root"; }

  BeneathOpen open(const std::string& path, int flags = O_RDONLY) {
    return open_beneath(root_fd_, path, flags, GetParam());
  }
  // The text of a file opened beneath the root, or "" on failure.
  std::string read(const std::string& path) {
    BeneathOpen f = open(path);
    if (f.error != 0) return "";
    char buf[64];
    const ssize_t n = ::pread(f.fd.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

  std::string tmp_;
  int root_fd_ = -1;
};

TEST_P(OpenBeneath, OpensANestedFileAndDirectory) {
  EXPECT_EQ(read("a/b/c/file"), "inside");
  BeneathOpen dir = open("a/b", O_PATH | O_DIRECTORY);
  ASSERT_EQ(dir.error, 0) << std::strerror(dir.error);
  struct stat st {};
  ASSERT_EQ(::fstat(dir.fd.get(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  // Empty and "." components are skipped.
  EXPECT_EQ(read("./a//b/./c/file"), "inside");
  // The returned descriptor is close-on-exec.
  BeneathOpen f = open("a/b/c/file");
  ASSERT_EQ(f.error, 0);
  EXPECT_NE(::fcntl(f.fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST_P(OpenBeneath, ASymlinkAtEveryComponentIsRefusedEvenWhenItStaysInside) {
  // Each of a, b, c and file in turn becomes a symlink: once to a target
  // outside the root, once to the same thing inside it.
  const std::string parts[] = {"a", "a/b", "a/b/c", "a/b/c/file"};
  const std::string outside[] = {tmp_ + "/outside", tmp_ + "/outside/b", tmp_ + "/outside/b/c",
                                 tmp_ + "/outside/file"};
  for (int i = 0; i < 4; ++i) {
    const std::string link = root() + "/" + parts[i];
    const std::string moved = link + ".real";
    fs::rename(link, moved);
    for (const std::string& target : {outside[i], moved}) {
      SCOPED_TRACE(parts[i] + " -> " + target);
      fs::create_symlink(target, link);
      EXPECT_EQ(open("a/b/c/file").error, ELOOP);
      EXPECT_EQ(read("a/b/c/file"), "");
      EXPECT_EQ(open(parts[i], O_PATH | O_DIRECTORY).error, ELOOP);
      EXPECT_EQ(open(parts[i], O_PATH).error, ELOOP);
      fs::remove(link);
    }
    fs::rename(moved, link);
  }
  EXPECT_EQ(read("a/b/c/file"), "inside");
}

TEST_P(OpenBeneath, ARelativeSymlinkClimbingOutIsRefused) {
  fs::create_symlink("../outside/file", root() + "/up");
  EXPECT_EQ(open("up").error, ELOOP);
}

TEST_P(OpenBeneath, DotDotIsRefusedWhereverItStands) {
  for (const char* path :
       {"..", "../outside/file", "a/../../outside/file", "a/b/../c", "a/b/c/file/.."}) {
    SCOPED_TRACE(path);
    EXPECT_EQ(open(path).error, EXDEV);
  }
}

TEST_P(OpenBeneath, AbsolutePathsAreRefused) {
  EXPECT_EQ(open(tmp_ + "/outside/file").error, EXDEV);
  EXPECT_EQ(open("/").error, EXDEV);
}

TEST_P(OpenBeneath, MissingAndMistypedComponentsSayWhich) {
  EXPECT_EQ(open("a/nothing/file").error, ENOENT);
  EXPECT_EQ(open("a/b/c/missing").error, ENOENT);
  EXPECT_EQ(open("").error, ENOENT);
  EXPECT_EQ(open("a/b/c/file/x").error, ENOTDIR);                      // through a file
  EXPECT_EQ(open("a/b/c/file", O_PATH | O_DIRECTORY).error, ENOTDIR);  // not a directory
}

TEST_P(OpenBeneath, AMagicLinkIsRefused) {
  // /proc/self/cwd and /proc/self/fd/N are magic links (they jump anywhere).
  const int proc_self = ::open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(proc_self, 0);
  EXPECT_EQ(open_beneath(proc_self, "cwd", O_PATH | O_DIRECTORY, GetParam()).error, ELOOP);
  EXPECT_EQ(open_beneath(proc_self, "fd/" + std::to_string(root_fd_), O_PATH, GetParam()).error,
            ELOOP);
  ::close(proc_self);
}

INSTANTIATE_TEST_SUITE_P(Resolutions, OpenBeneath,
                         ::testing::Values(BeneathResolution::openat2, BeneathResolution::walk,
                                           BeneathResolution::automatic),
                         [](const auto& info) {
                           switch (info.param) {
                             case BeneathResolution::openat2:
                               return "Openat2";
                             case BeneathResolution::walk:
                               return "Walk";
                             default:
                               return "Automatic";
                           }
                         });

}  // namespace
}  // namespace genomed
