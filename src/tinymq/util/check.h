#pragma once

// Invariant checks. A broken invariant is a bug in tinymq, never bad input: input from the network
// is validated and answered with a reason code instead (STYLE.md §2.4).
//
// TINYMQ_CHECK(cond) aborts with the source location in every build; TINYMQ_DCHECK(cond) only in
// builds without NDEBUG.
//
// Threading: Thread-safe.

namespace tinymq::util {

// Prints "file:line: check failed: expr" to stderr and aborts. (Not std::source_location: clang 14
// with libstdc++ 12 lacks it, and the fuzz targets are built with clang.)
[[noreturn]] void CheckFailed(const char* expr, const char* file, int line);

// Runs once, on the first thread whose check fails, before the message is printed and the
// process aborts: the program's chance to write out what its logger still holds (tinymq logs from
// a thread of its own, and the lines that led to a failure matter most). It must not take a lock
// a failing check could hold, and should be bounded in time. nullptr (the default): none.
using CheckFailureHook = void (*)();
void SetCheckFailureHook(CheckFailureHook hook);

}  // namespace tinymq::util

#define TINYMQ_CHECK(cond)                                    \
  do {                                                        \
    if (!(cond)) [[unlikely]] {                               \
      ::tinymq::util::CheckFailed(#cond, __FILE__, __LINE__); \
    }                                                         \
  } while (false)

#ifdef NDEBUG
#define TINYMQ_DCHECK(cond) \
  do {                      \
  } while (false && (cond))
#else
#define TINYMQ_DCHECK(cond) TINYMQ_CHECK(cond)
#endif
