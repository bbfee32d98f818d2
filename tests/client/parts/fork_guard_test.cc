// The fork guard without a daemon: a child of fork() sees its parent's
// guards as foreign, its own not.
#include "client/fork_guard.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace genomed::client_detail {
namespace {

// Runs `child` in a child of fork() and returns its exit code (the child
// returns what `child` returns, 0..255, without running gtest's teardown).
template <class F>
int in_child(F child) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(child());
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

TEST(ForkGuard, AGuardBelongsToTheProcessThatMadeIt) {
  const ForkGuard guard;
  EXPECT_FALSE(guard.foreign());
  EXPECT_EQ(guard.owner_pid(), ::getpid());
}

TEST(ForkGuard, InAChildOfForkTheParentsGuardIsForeignAndANewOneIsNot) {
  const ForkGuard parents;
  const int code = in_child([&] {
    if (!parents.foreign()) return 1;
    if (ForkGuard().foreign()) return 2;
    if (parents.forked_text("acquire").find("is a child of fork()") == std::string::npos) return 3;
    return 0;
  });
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(parents.foreign());  // the child's count is its own
}

TEST(ForkGuard, AGrandchildSeesBothEarlierGenerationsAsForeign) {
  const ForkGuard parents;
  const int code = in_child([&] {
    const ForkGuard childs;
    const int grandchild = in_child([&] { return parents.foreign() && childs.foreign() ? 0 : 1; });
    return grandchild == 0 && !childs.foreign() ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
}

TEST(ForkGuard, TheMessageNamesTheOwnerAndSaysWhatToDo) {
  const ForkGuard guard;
  const std::string text = guard.forked_text("stats");
  EXPECT_EQ(text.rfind("stats: this client was connected by process " +
                           std::to_string(::getpid()), 0),
            0u)
      << text;
  EXPECT_NE(text.find("connect() again in this process"), std::string::npos) << text;
}

}  // namespace
}  // namespace genomed::client_detail
