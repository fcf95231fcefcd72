#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinymq/mqtt/decoder.h"
#include "tools/bench/plan.h"
#include "tools/bench/sequence_tracker.h"
#include "tools/bench/ws_client.h"

// One MQTT client connection of tinymq-bench and everything its worker keeps about it: socket,
// protocol stage, decoder, unsent output, and the publisher's window or the subscriber's
// sequence trackers. Plain state: the Worker (worker.cc for the socket, worker_protocol.cc for
// MQTT) acts on it.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  `spec` belongs to the Worker and outlives the connection.

namespace tinymq::bench {

// Packet identifier states of a publisher (bits of Connection::id_state).
inline constexpr std::uint8_t kIdInFlight = 1;
inline constexpr std::uint8_t kIdMeasured = 2;  // stamped inside the measurement
inline constexpr std::uint8_t kIdReleased = 4;  // QoS 2: PUBREC received, PUBREL sent

// --websocket: the WebSocket layer between the socket and MQTT (worker_websocket.cc).
struct WsLink {
  explicit WsLink(std::string expected_accept) : response(std::move(expected_accept)) {}

  WsUpgradeResponse response;  // until the 101
  WsClientDecoder decoder;
  // What goes on the wire: the upgrade request, then frames. MQTT bytes wait in Connection::out
  // until the flush frames them; [wire_done, size) is not written yet.
  std::vector<std::uint8_t> wire;
  std::size_t wire_done = 0;
};

struct Connection {
  enum class State : std::uint8_t {
    kNew,           // not started
    kConnecting,    // TCP connect in progress
    kUpgrading,     // --websocket: upgrade request sent, 101 due
    kAwaitConnack,  // CONNECT sent
    kSubscribing,   // SUBSCRIBE(s) sent, SUBACK(s) due
    kReady,         // set up
    kClosed,
  };

  Connection(std::uint32_t i, const ConnSpec& s, mqtt::Decoder::Options decoder_options,
             mqtt::ProtocolVersion version)
      : index(i), spec(s), decoder(decoder_options, version) {}

  // Bytes not written yet: MQTT bytes and, with --websocket, framed ones.
  std::size_t unsent() const {
    return out.size() - out_done + (ws ? ws->wire.size() - ws->wire_done : 0);
  }

  // Const after construction.
  const std::uint32_t index;  // in the worker's table; the epoll data
  const ConnSpec& spec;

  int fd = -1;
  State state = State::kNew;
  mqtt::Decoder decoder;
  std::vector<std::uint8_t> out;  // encoded packets; [out_done, size) not written yet
  std::size_t out_done = 0;
  std::unique_ptr<WsLink> ws;   // --websocket only
  bool dirty = false;           // on the worker's flush list
  bool write_interest = false;  // EPOLLOUT registered: the socket was full
  std::int64_t last_write_ns = 0;
  std::int64_t keepalive_ns = 0;
  std::uint32_t subacks_pending = 0;
  bool final_ping = false;  // conn: the final PINGREQ is unanswered

  // Publisher.
  std::uint64_t next_seq = 0;
  std::vector<std::uint16_t> free_ids;  // a stack of the ids 1..window not in flight
  std::vector<std::uint8_t> id_state;   // by packet id: kId* bits

  // Subscriber: what it has received of each publisher (node-based: pointers stay valid).
  std::unordered_map<std::uint32_t, SequenceTracker> trackers;
  std::uint32_t cached_publisher = 0;
  SequenceTracker* cached_tracker = nullptr;
};

}  // namespace tinymq::bench
