// bench/cold_load: the page-cache drop that every cold-from-disk sample of
// genome-bench relies on, and the O_DIRECT read that is its baseline.
#include "bench/cold_load.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace genomed::bench {
namespace {

class ColdLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Files on a filesystem whose page cache can be dropped: the test's
    // temporary directory if it qualifies, else /var/tmp.
    const ColdDir where = pick_cold_dir({::testing::TempDir(), "/var/tmp"});
    if (where.path.empty()) GTEST_SKIP() << "no directory with O_DIRECT: " << where.skip_reason;
    std::string templ = where.path + "/cold-load-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  // A file of `size` bytes, written through the page cache (so resident).
  std::string write_file(const std::string& name, std::size_t size) {
    const std::string path = dir_ + "/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    std::vector<char> bytes(size, 'g');
    EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(size));
    ::close(fd);
    return path;
  }
  std::string dir_;
};

TEST_F(ColdLoadTest, DropsAFileJustWritten) {
  const std::string path = write_file("weights", (8u << 20) + 123);
  const Status s = drop_from_page_cache(path);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

// A page someone maps and touched is not dropped: the sample must not run
// warm by mistake, so the drop reports it (the mincore check).
TEST_F(ColdLoadTest, FailsWhileAProcessKeepsPagesMapped) {
  const std::size_t size = 4u << 20;
  const std::string path = write_file("weights", size);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  unsigned sum = 0;
  for (std::size_t i = 0; i < size; i += 4096) sum += static_cast<const unsigned char*>(p)[i];
  EXPECT_EQ(sum, 'g' * (size / 4096));
  const Status mapped = drop_from_page_cache(path);
  EXPECT_FALSE(mapped.ok());
  EXPECT_NE(mapped.message().find("still in the page cache"), std::string::npos)
      << mapped.to_string();
  ::munmap(p, size);
  ::close(fd);
  const Status unmapped = drop_from_page_cache(path);
  EXPECT_TRUE(unmapped.ok()) << unmapped.to_string();
}

TEST_F(ColdLoadTest, DropsEveryFileOfAnAdapterDirectory) {
  write_file("adapter_config.json", 300);
  write_file("adapter_model.safetensors", 1u << 20);
  const Status s = drop_dir_from_page_cache(dir_);
  EXPECT_TRUE(s.ok()) << s.to_string();
  EXPECT_FALSE(drop_dir_from_page_cache(dir_ + "/missing").ok());
}

// The regions of the streams cover the file exactly, its unaligned tail
// included, whatever the stream count (more streams than chunks too).
TEST_F(ColdLoadTest, DirectReadCoversTheWholeFile) {
  const std::string path = write_file("weights", (5u << 20) + 123);
  for (const DirectReadShape shape : {DirectReadShape{1, 1u << 20}, DirectReadShape{3, 1u << 20},
                                      DirectReadShape{8, 4u << 20}}) {
    const Result<double> gbps = direct_read_gbps(path, shape);
    ASSERT_TRUE(gbps.ok()) << shape.streams << " streams: " << gbps.status().to_string();
    EXPECT_GT(*gbps, 0);
  }
  EXPECT_FALSE(direct_read_gbps(path, {4, 1000}).ok());  // chunk not 4096-aligned
  EXPECT_FALSE(direct_read_gbps(path, {0, 1u << 20}).ok());
}

TEST(ColdDir, RefusesTmpfsWithTheReason) {
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC)
    GTEST_SKIP() << "/dev/shm is not tmpfs here";
  const ColdDir where = pick_cold_dir({"/dev/shm"});
  EXPECT_TRUE(where.path.empty());
  EXPECT_NE(where.skip_reason.find("tmpfs"), std::string::npos) << where.skip_reason;
}

TEST(ColdDir, NamesAMissingDirectory) {
  const ColdDir where = pick_cold_dir({"/nonexistent-genome-bench-dir"});
  EXPECT_TRUE(where.path.empty());
  EXPECT_NE(where.skip_reason.find("/nonexistent-genome-bench-dir"), std::string::npos);
}

}  // namespace
}  // namespace genomed::bench
