// Read leases on a load's files (loader/file_lease.h) and what OpenedAdapter
// makes of them: refused while a writer has the file open, broken (and let
// go at once by the watcher) when one opens it or truncates it, a broken
// lease a `file_changed` of the load, whatever the file's timestamps say.
#include "loader/file_lease.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "loader/name_resolver.h"
#include "tools/testkit/eventually.h"
#include "tools/testkit/scratch_dir.h"

namespace genomed::loader {
namespace {

using testkit::eventually;
using testkit::ScratchDir;

// As genomed's main() does before any thread starts: every thread of this
// binary inherits the mask, so a break is never delivered to a thread (its
// default action would end the process) but waits for the watcher.
const bool g_blocked = [] {
  LeaseBreakWatcher::block_signal();
  return true;
}();

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

class FileLeaseTest : public ::testing::Test {
 protected:
  FileLeaseTest() : dir_("genomed-lease") {
    write_text(path_, "version 1");
    fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  }

  std::unique_ptr<LeaseBreakWatcher> watch() {
    auto w = LeaseBreakWatcher::start();
    EXPECT_TRUE(w.ok()) << w.status().to_string();
    return w.ok() ? std::move(w).value() : nullptr;
  }

  ScratchDir dir_;
  const std::string path_ = dir_ / "weights";
  Fd fd_;
};

TEST_F(FileLeaseTest, WithoutAWatcherNoLeaseIsTaken) {
  // The signal of a break would otherwise reach no one who lets go.
  const LeaseAttempt a = take_read_lease(fd_.get(), path_);
  EXPECT_EQ(a.taken, LeaseTaken::unavailable);
  EXPECT_EQ(a.error, ENOTSUP);
  EXPECT_FALSE(lease_intact(fd_.get()));
}

TEST_F(FileLeaseTest, ALeaseIsRefusedWhileTheFileIsOpenForWriting) {
  auto watcher = watch();
  Fd writer(::open(path_.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(writer.valid());
  EXPECT_EQ(take_read_lease(fd_.get(), path_).taken, LeaseTaken::busy);
  writer.reset();
  EXPECT_EQ(take_read_lease(fd_.get(), path_).taken, LeaseTaken::held);
  EXPECT_TRUE(lease_intact(fd_.get()));
}

TEST_F(FileLeaseTest, AWriterOpeningTheFileBreaksTheLeaseAndTheWatcherLetsGo) {
  auto watcher = watch();
  ASSERT_EQ(take_read_lease(fd_.get(), path_).taken, LeaseTaken::held);
  // A non-blocking open for writing starts the break and is told to wait:
  // the lease was there.
  EXPECT_EQ(::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  EXPECT_FALSE(lease_intact(fd_.get()));
  // The watcher lets go (long before lease-break-time, 45 s by default):
  // the writer gets in.
  ASSERT_TRUE(eventually([&] { return watcher->breaks() == 1; }));
  Fd writer(::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  EXPECT_TRUE(writer.valid()) << std::strerror(errno);
  EXPECT_FALSE(lease_intact(fd_.get()));
}

TEST_F(FileLeaseTest, TruncatingByNameBreaksTheLease) {
  auto watcher = watch();
  ASSERT_EQ(take_read_lease(fd_.get(), path_).taken, LeaseTaken::held);
  // Waits for the watcher to let go, then truncates.
  ASSERT_EQ(::truncate(path_.c_str(), 3), 0) << std::strerror(errno);
  EXPECT_FALSE(lease_intact(fd_.get()));
  EXPECT_EQ(watcher->breaks(), 1u);
}

TEST_F(FileLeaseTest, ReadersDoNotBreakIt) {
  auto watcher = watch();
  ASSERT_EQ(take_read_lease(fd_.get(), path_).taken, LeaseTaken::held);
  Fd reader(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  EXPECT_EQ(take_read_lease(reader.get(), path_).taken, LeaseTaken::held);
  EXPECT_TRUE(lease_intact(fd_.get()));
  release_lease(fd_.get());
  EXPECT_FALSE(lease_intact(fd_.get()));
  EXPECT_TRUE(lease_intact(reader.get()));
}

TEST_F(FileLeaseTest, AFileOfAnotherOwnerWithoutCapLeaseHasNoLease) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  auto watcher = watch();
  ASSERT_EQ(::chown(path_.c_str(), 65534, 65534), 0);
  LeaseAttempt got;
  // Capabilities are per thread: this one drops CAP_LEASE, as a genomed
  // that runs as another user than the files' owner lacks it.
  std::thread([&] {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    ASSERT_EQ(::syscall(SYS_capget, &header, data), 0);
    data[CAP_LEASE / 32].effective &= ~(1u << (CAP_LEASE % 32));
    ASSERT_EQ(::syscall(SYS_capset, &header, data), 0);
    got = take_read_lease(fd_.get(), path_);
  }).join();
  EXPECT_EQ(got.taken, LeaseTaken::unavailable);
  EXPECT_EQ(got.error, EACCES);
}

// ---- OpenedAdapter: the resolver takes the leases, unchanged() reads them ----
// (and lets them go before their files are closed)

class LeasedAdapterTest : public ::testing::Test {
 protected:
  LeasedAdapterTest() : root_("genomed-lease-root") {
    std::filesystem::create_directories(root_ / "a");
    write_text(config_, "{}");
    write_text(weights_, "version 1");
  }

  Result<OpenedAdapter> open() {
    auto resolver = NameResolver::create({root_.path()});
    EXPECT_TRUE(resolver.ok());
    return resolver->open("a");
  }

  ScratchDir root_;
  const std::string config_ = root_ / "a/adapter_config.json";
  const std::string weights_ = root_ / "a/adapter_model.safetensors";
  std::unique_ptr<LeaseBreakWatcher> watcher_ = std::move(LeaseBreakWatcher::start()).value();
};

TEST_F(LeasedAdapterTest, BothFilesAreLeasedAndUnchangedWhileNobodyWrites) {
  auto opened = open();
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_TRUE(opened->config_leased);
  EXPECT_TRUE(opened->weights_leased);
  EXPECT_TRUE(opened->unchanged().ok());
}

TEST_F(LeasedAdapterTest, AWeightsFileOpenForWritingIsRefusedAsChanged) {
  // A writer may be half-way through it: its timestamps may already be final.
  Fd writer(::open(weights_.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(writer.valid());
  auto opened = open();
  ASSERT_EQ(opened.code(), Errc::file_changed) << opened.status().to_string();
  EXPECT_NE(opened.status().message().find("open for writing"), std::string::npos);
  writer.reset();
  EXPECT_TRUE(open().ok());
}

TEST_F(LeasedAdapterTest, AnInPlaceWriteIsAChangeTheLeaseSees) {
  auto opened = open();
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  const struct stat before = [&] {
    struct stat st {};
    ::stat(weights_.c_str(), &st);
    return st;
  }();
  {
    Fd writer(::open(weights_.c_str(), O_WRONLY | O_CLOEXEC));  // waits for the watcher
    ASSERT_TRUE(writer.valid());
    ASSERT_EQ(::pwrite(writer.get(), "VERSION 2", 9, 0), 9);
    // The writer puts mtime back; only ctime remains, and the identity
    // check alone catches even this only when the clock ticked.
    const timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::futimens(writer.get(), times), 0);
  }
  const Status s = opened->unchanged();
  EXPECT_EQ(s.code(), Errc::file_changed) << s.to_string();
  EXPECT_NE(s.message().find("opened for writing or truncated"), std::string::npos) << s.message();
}

TEST_F(LeasedAdapterTest, ATruncatedConfigIsAChange) {
  auto opened = open();
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  ASSERT_EQ(::truncate(config_.c_str(), 0), 0);
  const Status s = opened->unchanged();
  EXPECT_EQ(s.code(), Errc::file_changed);
  EXPECT_NE(s.message().find("adapter_config.json"), std::string::npos) << s.message();
}

TEST_F(LeasedAdapterTest, ALoadsFilesLetTheirLeasesGoBeforeTheyAreClosed) {
  Fd worker_copy;  // a worker's descriptor of the same open file (SCM_RIGHTS)
  {
    auto opened = open();
    ASSERT_TRUE(opened.ok()) << opened.status().to_string();
    worker_copy.reset(::dup(opened->files->weights.get()));
    ASSERT_TRUE(worker_copy.valid());
  }
  // Closed with its lease still on the open file, a writer would wait for
  // lease-break-time on a break nobody in genomed can let go.
  Fd writer(::open(weights_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  EXPECT_TRUE(writer.valid()) << std::strerror(errno);
  EXPECT_EQ(watcher_->breaks(), 0u);
}

TEST_F(LeasedAdapterTest, ABreakSignalForANumberReusedSinceIsNoBreak) {
  int number = -1;
  {
    auto opened = open();  // a load, cancelled: its files are closed
    ASSERT_TRUE(opened.ok()) << opened.status().to_string();
    number = opened->files->weights.get();
  }
  // The number now names an unrelated file, which has no lease: F_GETLEASE
  // reads F_UNLCK on it as on a broken lease.
  write_text(root_ / "unrelated", "x");
  Fd unrelated(::open((root_ / "unrelated").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(unrelated.valid());
  ASSERT_EQ(::dup2(unrelated.get(), number), number);
  Fd reused(number);
  // A break signal for that number, as the kernel sends one (a lease still
  // on the old open file elsewhere, or a break racing the close).
  siginfo_t info{};
  info.si_signo = LeaseBreakWatcher::signal_number();
  info.si_code = POLL_MSG;
  info.si_band = POLLMSG;
  info.si_fd = number;
  ASSERT_EQ(::syscall(SYS_rt_sigqueueinfo, ::getpid(), info.si_signo, &info), 0)
      << std::strerror(errno);
  // Then a real break, signalled after it on the same queue: the truncate
  // returns once the watcher let that lease go, so it has read both.
  const std::string other = root_ / "other";
  write_text(other, "version 1");
  Fd leased(::open(other.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(take_read_lease(leased.get(), other).taken, LeaseTaken::held);
  ASSERT_EQ(::truncate(other.c_str(), 0), 0) << std::strerror(errno);
  EXPECT_EQ(watcher_->breaks(), 1u);
  release_lease(leased.get());
}

}  // namespace
}  // namespace genomed::loader
