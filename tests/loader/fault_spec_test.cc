// The workers' test-only fault specs (worker/fault.h) for the fill's reads:
// eio, short and nodirect parse at the read stage only, and no other action
// does (a spec that cannot mean anything is refused at start, not ignored).
#include <gtest/gtest.h>

#include "worker/fault.h"

namespace genomed::jobs {
namespace {

TEST(FaultSpec, ReadFaultsParseAtTheReadStage) {
  if (!fault_injection_built()) GTEST_FAIL() << "needs -DGENOMED_FAULT_INJECTION=ON";
  const auto eio = parse_fault("eio@read");
  ASSERT_TRUE(eio.ok()) << eio.status().to_string();
  EXPECT_EQ(eio->action, Fault::Action::eio);
  EXPECT_EQ(eio->stage, Fault::Stage::read);
  const auto short_read = parse_fault("short@read:slow,once=/tmp/x");
  ASSERT_TRUE(short_read.ok()) << short_read.status().to_string();
  EXPECT_EQ(short_read->action, Fault::Action::short_read);
  EXPECT_EQ(short_read->match, "slow");
  EXPECT_EQ(short_read->once_path, "/tmp/x");
  const auto no_direct = parse_fault("nodirect@read");
  ASSERT_TRUE(no_direct.ok()) << no_direct.status().to_string();
  EXPECT_EQ(no_direct->action, Fault::Action::no_direct);
}

TEST(FaultSpec, ReadFaultsAtAnotherStageAndOtherActionsAtReadAreRefused) {
  if (!fault_injection_built()) GTEST_FAIL() << "needs -DGENOMED_FAULT_INJECTION=ON";
  for (const char* spec : {"eio@fill", "short@probe", "nodirect@start", "crash@read", "stop@read"}) {
    const auto f = parse_fault(spec);
    EXPECT_EQ(f.code(), Errc::bad_request) << spec;
  }
}

}  // namespace
}  // namespace genomed::jobs
