#include "tinymq/util/check.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace tinymq::util {
namespace {

void WriteMarker() { std::fputs("hook: the logger's queue written\n", stderr); }

void FailingHook() {
  std::fputs("hook began\n", stderr);
  TINYMQ_CHECK(1 + 1 == 3);  // a check failing inside the hook must not loop
}

class CheckTest : public testing::Test {
 protected:
  void TearDown() override { SetCheckFailureHook(nullptr); }
};

TEST_F(CheckTest, FailedCheckPrintsTheExpressionAndAborts) {
  EXPECT_DEATH(TINYMQ_CHECK(2 < 1), "check_test.cc:[0-9]+: check failed: 2 < 1");
}

TEST_F(CheckTest, HookRunsBeforeTheMessage) {
  SetCheckFailureHook(&WriteMarker);
  EXPECT_DEATH(TINYMQ_CHECK(2 < 1), "hook: the logger's queue written\n.*check failed: 2 < 1");
}

TEST_F(CheckTest, CheckFailingInsideTheHookEndsWithoutRunningItAgain) {
  SetCheckFailureHook(&FailingHook);
  EXPECT_DEATH(TINYMQ_CHECK(2 < 1), "^hook began\n[^\n]*check failed: 1 \\+ 1 == 3\n$");
}

TEST_F(CheckTest, PassingCheckRunsNoHook) {
  SetCheckFailureHook(&WriteMarker);
  testing::internal::CaptureStderr();
  TINYMQ_CHECK(1 < 2);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace tinymq::util
