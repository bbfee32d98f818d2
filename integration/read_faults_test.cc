// The fill's reads of the weights file failing under a real daemon (issue
// 24: direct I/O must not give up safety): the workers' read faults
// (worker/fault.h: eio, short, nodirect at stage read) force the direct
// read path and break it. A failing disk is a typed file_unreadable naming
// the file, and the daemon goes on serving; short reads and a file system
// refusing O_DIRECT still give the file's exact bytes, which verify.
#include <gtest/gtest.h>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

// A 16 MiB adapter: several direct chunks per part, and split over both
// workers (fills of 8 MiB or more are).
const fixture::AdapterSpec kSpec{.rank = 64, .layers = 16, .hidden = 4096};

TEST(ReadFaults, AnEioOnTheFillsReadsIsFileUnreadableAndTheDaemonServesOn) {
  Daemon daemon({.extra_args = {"--worker-fault", "eio@read:failing"}});
  daemon.add_adapter("failing", kSpec);
  const std::string good = daemon.add_adapter("good", kSpec);
  Client client = daemon.connect();
  auto bad = client.acquire("failing");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), Errc::file_unreadable) << bad.status().to_string();
  EXPECT_NE(bad.status().message().find("adapter_model.safetensors"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(daemon.stat("bytes_reserved"), 0u);
  auto ok = client.acquire("good");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  expect_file_bytes(*ok, good + "/adapter_model.safetensors");
}

// Under `fault` (which spares the fill's reads nothing but a failure), an
// acquire still gives the file's exact bytes, and they verify.
void expect_the_file_bytes_under(const std::string& fault) {
  Daemon daemon({.extra_args = {"--worker-fault", fault}});
  const std::string dir = daemon.add_adapter("adapter", kSpec);
  Client client = daemon.connect();
  auto lease = client.acquire("adapter");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  expect_file_bytes(*lease, dir + "/adapter_model.safetensors");
  EXPECT_TRUE(lease->verify().ok());
}

TEST(ReadFaults, ShortDirectReadsStillGiveTheFileBytesAndTheyVerify) {
  expect_the_file_bytes_under("short@read");
}

TEST(ReadFaults, AFileSystemWithoutDirectIoFallsBackToBufferedReads) {
  expect_the_file_bytes_under("nodirect@read");
}

}  // namespace
}  // namespace genomed::testing
