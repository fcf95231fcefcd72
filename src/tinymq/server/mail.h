#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/tls.h"
#include "tinymq/server/connection_caps.h"
#include "tinymq/server/transport.h"

// Mail: what a worker's mailbox (mailbox.h) carries to it, from the other workers, the committer
// (committer.h) and the server.
//
// Threading: Thread-compatible; a Mail moves from its sender to the one worker that reads it.
// Lifetime:  owns everything it carries (a handed-over socket, bytes, an envelope's message).

namespace tinymq::server {

struct Mail {
  enum class Kind : std::uint8_t {
    kEnvelope,     // broker work from another worker: `envelope`
    kConnection,   // a connection handed over: its socket `fd`, `peer` and the bytes read so far,
                   // its `transport` (null: plain TCP), `cert_username`, `address`
    kDurable,      // from the committer: every batch this worker submitted up to `epoch` is durable
    kShutdown,     // stop accepting, close every connection (DISCONNECT 0x8B to MQTT 5 clients)
    kStop,         // close every connection and return from Run()
    kCredentials,  // from the verifier: the password check of `connection` said `ok`
    kAccess,       // from the server: new connections get the policy `access` (a reload)
    kLimits,       // from the server: the broker's limits from now on are `limits` (a reload)
  };
  Kind kind = Kind::kEnvelope;
  broker::Envelope envelope;
  net::Fd fd;
  std::string peer;
  std::vector<std::uint8_t> input;
  // kConnection: its transport moves with its socket (used by one thread at a time: the sender
  // lets go of it before posting); the username its certificate gave (broker::Broker::Handoff);
  // the source address it counts against (ConnectionCaps: the count moves with it).
  std::unique_ptr<Transport> transport;
  std::string cert_username;
  AddressKey address{};
  std::uint64_t epoch = 0;                             // kDurable
  broker::ConnectionId connection = 0;                 // kCredentials
  bool ok = false;                                     // kCredentials
  std::shared_ptr<const broker::AccessPolicy> access;  // kAccess
  std::shared_ptr<const broker::Limits> limits;        // kLimits
};

}  // namespace tinymq::server
