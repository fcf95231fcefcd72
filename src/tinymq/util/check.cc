#include "tinymq/util/check.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace tinymq::util {
namespace {

std::atomic<CheckFailureHook> g_hook{nullptr};

}  // namespace

void SetCheckFailureHook(CheckFailureHook hook) { g_hook.store(hook); }

void CheckFailed(const char* expr, const char* file, int line) {
  // Taken, not read: a check failing inside the hook, or on another thread meanwhile, goes
  // straight to the message.
  if (CheckFailureHook hook = g_hook.exchange(nullptr)) {
    hook();
  }
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
  std::abort();
}

}  // namespace tinymq::util
