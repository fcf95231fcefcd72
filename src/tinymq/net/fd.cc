#include "tinymq/net/fd.h"

#include <unistd.h>

namespace tinymq::net {

void Fd::Reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) {
    // No retry on EINTR: Linux has released the descriptor already, and a retry could close a
    // descriptor another thread has just been given.
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace tinymq::net
