#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/types.h"

// MQTT 5 enhanced authentication (5.0 §4.12): the interface through which the broker core runs a
// challenge/response exchange (CONNECT, AUTH 0x18 back and forth, then CONNACK; and later
// re-authentication with AUTH 0x19) without knowing any method. A method (SCRAM, Kerberos, a
// token check...) is an Authenticator; the core owns the packets, the states and the timers.
//
// With no Authenticator, or one that does not know the method a CONNECT names, the CONNECT gets
// CONNACK 0x8C (Bad authentication method) and the connection is closed.
//
// Threading: called only from the worker thread that owns the broker.
// Lifetime:  the Authenticator outlives the Broker; an AuthExchange lives as long as its
//            connection's exchange (it is destroyed when the exchange ends or the connection does).
// Errors:    a failed step ends the exchange with its reason code (CONNACK before the connection is
//            accepted, DISCONNECT after).

namespace tinymq::broker {

// What one step of an exchange decided.
struct AuthStep {
  enum class Outcome : std::uint8_t {
    kSuccess,   // authenticated: CONNACK 0x00 (or AUTH 0x00 on re-authentication)
    kContinue,  // send `data` in AUTH 0x18 and wait for the client's next AUTH
    kFail,      // refuse with `reason` (0x87 Not authorized, 0x86 Bad user name or password, ...)
  };
  Outcome outcome = Outcome::kFail;
  std::vector<std::uint8_t> data;  // Authentication Data to send (may be empty)
  mqtt::ReasonCode reason = mqtt::ReasonCode::kNotAuthorized;
};

// One exchange with one client, for one method.
class AuthExchange {
 public:
  virtual ~AuthExchange() = default;
  // The client's Authentication Data (from CONNECT, then from each AUTH); empty when absent.
  virtual AuthStep Next(mqtt::BinaryView client_data) = 0;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // Starts an exchange for `method`, asked for by client `client_id`; nullptr when the method is
  // not supported (the client then gets 0x8C).
  virtual std::unique_ptr<AuthExchange> Begin(std::string_view method,
                                              std::string_view client_id) = 0;
};

}  // namespace tinymq::broker
