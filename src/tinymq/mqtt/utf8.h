#pragma once

#include <cstdint>
#include <string_view>

// UTF-8 validation for MQTT strings (3.1.1 §1.5.3, 5.0 §1.5.4): well-formed per RFC 3629 (no
// overlong forms, no UTF-16 surrogates U+D800..U+DFFF, nothing above U+10FFFF, no cut sequences)
// and no U+0000. Control characters and non-characters are allowed: the specifications say a
// receiver MAY refuse them, and refusing them would break clients that use them legitimately.
//
// Threading: Thread-safe (pure function).

namespace tinymq::mqtt {

enum class Utf8Check : std::uint8_t { kValid, kIllFormed, kNullCharacter };

Utf8Check CheckUtf8(std::string_view s);

}  // namespace tinymq::mqtt
