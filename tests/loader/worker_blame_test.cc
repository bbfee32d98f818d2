// Whom a worker's death during a job is blamed on (Pool's blame_for_exit):
// only what an adapter can cause earns it a strike.
#include <gtest/gtest.h>
#include <signal.h>

#include "loader/pool.h"

namespace genomed::loader {
namespace {

WorkerExit killed_by(int sig, bool by_us = false) {
  return WorkerExit{.known = true, .signaled = true, .signal = sig, .signal_sent_by_us = by_us};
}

TEST(WorkerBlame, CrashSignalsAreTheAdapters) {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL})
    EXPECT_EQ(blame_for_exit(killed_by(sig)), Blame::adapter) << sigabbrev_np(sig);
}

TEST(WorkerBlame, SignalsGenomedDidNotSendAreExternal) {
  // The OOM killer's SIGKILL, an operator's SIGKILL or SIGTERM, a hangup.
  for (int sig : {SIGKILL, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1})
    EXPECT_EQ(blame_for_exit(killed_by(sig)), Blame::external) << sigabbrev_np(sig);
}

TEST(WorkerBlame, ASignalGenomedSentIsTheAdapters) {
  // genomed signals a worker only to stop it for a missed deadline or a
  // protocol violation.
  EXPECT_EQ(blame_for_exit(killed_by(SIGKILL, true)), Blame::adapter);
  EXPECT_EQ(blame_for_exit(killed_by(SIGTERM, true)), Blame::adapter);
}

TEST(WorkerBlame, AnExitInTheMiddleOfAJobIsTheAdapters) {
  EXPECT_EQ(blame_for_exit(WorkerExit{.known = true, .code = 7}), Blame::adapter);
  EXPECT_EQ(blame_for_exit(WorkerExit{.known = true, .code = 0}), Blame::adapter);
}

TEST(WorkerBlame, AnUnknownEndIsNotCountedAgainstTheAdapter) {
  EXPECT_EQ(blame_for_exit(WorkerExit{}), Blame::external);
}

TEST(WorkerBlame, Names) {
  EXPECT_STREQ(blame_name(Blame::none), "none");
  EXPECT_STREQ(blame_name(Blame::adapter), "adapter");
  EXPECT_STREQ(blame_name(Blame::external), "external");
}

}  // namespace
}  // namespace genomed::loader
