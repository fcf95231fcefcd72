#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/net/fd.h"

// Mail: what a worker's mailbox (mailbox.h) carries to it, from the other workers, the committer
// (committer.h) and the server.
//
// Threading: Thread-compatible; a Mail moves from its sender to the one worker that reads it.
// Lifetime:  owns everything it carries (a handed-over socket, bytes, an envelope's message).

namespace tinymq::server {

struct Mail {
  enum class Kind : std::uint8_t {
    kEnvelope,    // broker work from another worker: `envelope`
    kConnection,  // a connection handed over: its socket `fd`, `peer` and the bytes read so far
    kDurable,     // from the committer: every batch this worker submitted up to `epoch` is durable
    kStop,        // close every connection and return from Run()
  };
  Kind kind = Kind::kEnvelope;
  broker::Envelope envelope;
  net::Fd fd;
  std::string peer;
  std::vector<std::uint8_t> input;
  std::uint64_t epoch = 0;  // kDurable
};

}  // namespace tinymq::server
