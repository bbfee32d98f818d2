// The arena against a process of genomed's own uid (issue 9, item 8): it
// could reopen the arena read-write through /proc/<genomed>/fd and truncate
// it, killing every client with SIGBUS and the workers with it. The arena's
// size is sealed now; writes by that uid remain possible and are what
// docs/architecture.md ("Threat model") says they are.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

TEST(ArenaHardening, ReopeningTheDaemonsArenaWritableCannotTruncateIt) {
  Daemon daemon;
  daemon.add_adapter("victim", {});
  Client client = daemon.connect();
  auto lease = client.acquire("victim");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  const std::string before(reinterpret_cast<const char*>(lease->tensors()[0].data.data()),
                           lease->tensors()[0].data.size());

  // The attack as measured: the same uid (here root, which also passes the
  // 0400 mode) opens the daemon's descriptor writable.
  const int fd = open_arena_writable(daemon.pid());
  ASSERT_NE(fd, -1) << "no read-write memfd arena among genomed's descriptors";
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  EXPECT_NE(::ftruncate(fd, 0), 0) << "the arena could be truncated";
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(fd, st.st_size + 4096), 0) << "the arena could be grown";
  ::close(fd);

  // The client reads its lease without SIGBUS; the daemon and its workers
  // still serve.
  const std::string after(reinterpret_cast<const char*>(lease->tensors()[0].data.data()),
                          lease->tensors()[0].data.size());
  EXPECT_EQ(after, before);
  daemon.add_adapter("next", {});
  auto next = client.acquire("next");
  ASSERT_TRUE(next.ok()) << next.status().to_string();
  EXPECT_EQ(daemon.stat("workers_alive"), 2u);
}

}  // namespace
}  // namespace genomed::testing
