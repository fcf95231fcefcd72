#pragma once

#include <string>

// ErrnoText: the description of an errno value for messages, e.g. "address already in use".
//
// Threading: Thread-safe.
// Lifetime:  returns an owned string.
// Errors:    none; an unknown value gives "error N".

namespace tinymq::net {

std::string ErrnoText(int error);

}  // namespace tinymq::net
