// The identity check of a load's open files: a rewrite in place, a
// truncation, a touch or a chmod of the open file is `file_changed`, naming
// the file and what changed. A new file renamed over the path leaves the
// open file's bytes alone, but the old file lost its name (its ctime
// changes): a load that saw it replaced fails too rather than serve a
// version already superseded.
#include "loader/file_identity.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/fd.h"

namespace genomed::loader {
namespace {

class FileIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/genomed-identity-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/adapter_model.safetensors";
    std::ofstream(path_) << "version one";
    fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd_.valid());
    auto id = identity_of_fd(fd_.get(), path_);
    ASSERT_TRUE(id.ok()) << id.status().to_string();
    before_ = *id;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Status check() const { return unchanged_since(fd_.get(), before_, path_); }

  std::string dir_, path_;
  Fd fd_;
  FileIdentity before_;
};

TEST_F(FileIdentityTest, IsTheFilesStat) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(before_, identity_of(st));
  EXPECT_EQ(before_.size, 11u);
  EXPECT_EQ(before_.ino, static_cast<std::uint64_t>(st.st_ino));
  EXPECT_TRUE(check().ok());
}

TEST_F(FileIdentityTest, AnInPlaceRewriteOfTheSameSizeIsAChange) {
  std::ofstream(path_, std::ios::in | std::ios::out) << "version two";  // same inode, 11 bytes
  const Status s = check();
  EXPECT_EQ(s.code(), Errc::file_changed) << s.to_string();
  EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("mtime"), std::string::npos) << s.message();
}

TEST_F(FileIdentityTest, ATruncationIsAChangeOfSize) {
  ASSERT_EQ(::truncate(path_.c_str(), 3), 0);
  const Status s = check();
  EXPECT_EQ(s.code(), Errc::file_changed);
  EXPECT_NE(s.message().find("size 11 -> 3"), std::string::npos) << s.message();
}

TEST_F(FileIdentityTest, ATouchOrAChmodAloneIsAChange) {
  const struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path_.c_str(), times, 0), 0);
  EXPECT_EQ(check().code(), Errc::file_changed);
  auto touched = identity_of_fd(fd_.get(), path_);
  ASSERT_TRUE(touched.ok());
  before_ = *touched;
  ASSERT_EQ(::chmod(path_.c_str(), 0400), 0);  // ctime only
  const Status s = check();
  EXPECT_EQ(s.code(), Errc::file_changed);
  EXPECT_NE(s.message().find("ctime"), std::string::npos) << s.message();
}

TEST_F(FileIdentityTest, ANewFileRenamedOverThePathKeepsTheBytesButIsAChange) {
  const std::string next = dir_ + "/next";
  std::ofstream(next) << "version two, longer";
  ASSERT_EQ(::rename(next.c_str(), path_.c_str()), 0);
  char buf[32];
  ASSERT_EQ(::pread(fd_.get(), buf, sizeof buf, 0), 11);
  EXPECT_EQ(std::string(buf, 11), "version one");  // the open file is the old version
  const Status s = check();
  EXPECT_EQ(s.code(), Errc::file_changed);
  EXPECT_NE(s.message().find("ctime"), std::string::npos) << s.message();
  // The path now names another file: a new load sees another identity.
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_NE(identity_of(st).ino, before_.ino);
}

}  // namespace
}  // namespace genomed::loader
