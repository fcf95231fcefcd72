#pragma once

// Counting allocations in a fuzz target: replaces the global operator new and delete of the
// program that includes it (include it from one file of a fuzz executable only), so that a target
// can check that a call allocates nothing (fuzz_alloc::counting on, fuzz_alloc::allocations read
// after).

#include <cstddef>
#include <cstdlib>
#include <new>

namespace fuzz_alloc {

inline bool counting = false;
inline std::size_t allocations = 0;

// Counted malloc; null when there is no memory.
inline void* Counted(std::size_t size) noexcept {
  if (counting) {
    ++allocations;
  }
  return std::malloc(size == 0 ? 1 : size);
}

inline void* Allocate(std::size_t size) {
  if (void* p = Counted(size)) {
    return p;
  }
  throw std::bad_alloc();
}

}  // namespace fuzz_alloc

// Every form that pairs with the deletes below (libFuzzer itself uses the nothrow ones).
void* operator new(std::size_t size) { return fuzz_alloc::Allocate(size); }
void* operator new[](std::size_t size) { return fuzz_alloc::Allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return fuzz_alloc::Counted(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return fuzz_alloc::Counted(size);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
