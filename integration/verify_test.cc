// The checksums a load records let a client check its copy at any time:
// Lease::verify() and `genomectl verify NAME` pass on an intact copy, and
// name the tensor once a byte of it changed. The change is made the only way
// a process can: through the daemon's own read-write arena descriptor,
// reopened via /proc by a process of the daemon's uid (a stray writer; the
// descriptors clients receive are read-only).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

TEST(Verify, AnIntactCopyPassesAndAChangedByteIsNamedByItsTensor) {
  Daemon daemon;
  daemon.add_adapter("a", {.rank = 8, .layers = 2, .hidden = 64, .seed = 3});
  Client client = daemon.connect();
  auto lease = client.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  ASSERT_TRUE(lease->verify().ok());
  for (const TensorView& t : lease->tensors()) EXPECT_NE(t.checksum, 0u) << t.name;

  const CommandResult ok =
      run_command({binary("genomectl"), "--socket", daemon.socket_path(), "verify", "a"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("8 tensors"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("every checksum matches"), std::string::npos) << ok.out;

  // One byte of the third tensor changes under the lease.
  const TensorView& victim = lease->tensors()[2];
  const std::byte* base = arena_mapping();
  ASSERT_NE(base, nullptr);
  const int arena = open_arena_writable(daemon.pid());
  ASSERT_GE(arena, 0);
  const off_t at = victim.data.data() + 5 - base;
  const std::byte before = victim.data[5];
  const std::byte after = before ^ std::byte{0x40};
  ASSERT_EQ(::pwrite(arena, &after, 1, at), 1);
  ASSERT_EQ(victim.data[5], after);  // the client's read-only mapping sees it

  ChecksumMismatch mismatch;
  const Status s = lease->verify(&mismatch);
  EXPECT_EQ(s.code(), Errc::layout_invalid) << s.to_string();
  EXPECT_EQ(mismatch.tensor, victim.name);
  EXPECT_EQ(mismatch.recorded, victim.checksum);
  EXPECT_NE(mismatch.actual, victim.checksum);
  EXPECT_NE(s.message().find(std::string(victim.name)), std::string::npos) << s.message();

  const CommandResult bad =
      run_command({binary("genomectl"), "--socket", daemon.socket_path(), "verify", "a"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("error: layout_invalid"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(std::string(victim.name)), std::string::npos) << bad.err;

  ASSERT_EQ(::pwrite(arena, &before, 1, at), 1);
  ::close(arena);
  EXPECT_TRUE(lease->verify().ok());
}

TEST(Verify, AReleasedLeaseHasNothingToVerify) {
  Daemon daemon;
  daemon.add_adapter("a", {});
  Client client = daemon.connect();
  auto lease = client.acquire("a");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  lease->release();
  EXPECT_EQ(lease->verify().code(), Errc::bad_request);
}

}  // namespace
}  // namespace genomed::testing
