#include "tinymq/net/errno_text.h"

#include <cstring>

namespace tinymq::net {

std::string ErrnoText(int error) {
  // strerrordesc_np (glibc 2.32+): thread-safe and not translated, unlike strerror().
  const char* text = ::strerrordesc_np(error);
  if (text == nullptr) {
    return "error " + std::to_string(error);
  }
  std::string s(text);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') {  // messages read "host:port: address ..."
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  }
  return s;
}

}  // namespace tinymq::net
