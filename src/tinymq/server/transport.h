#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tinymq/config/config.h"
#include "tinymq/net/proxy_protocol.h"
#include "tinymq/net/tls.h"
#include "tinymq/net/websocket.h"

// Transport: what a worker's connection has between its socket and the broker beyond plain TCP,
// in the order its bytes meet them: a PROXY protocol header (read first, straight off the
// socket), TLS, then WebSocket (the HTTP upgrade, then frames). Plain TCP connections have none
// (a null pointer in the worker's record). It moves with a connection handed to another worker
// (Mail::transport), so that whatever it holds goes on there.
//
// Threading: Thread-compatible; used by the one worker that has its connection.
// Lifetime:  owns its TLS session and buffers.

namespace tinymq::server {

// The WebSocket side of a connection: the upgrade, the decoder of the client's frames, and the
// framing of the broker's output. Output is written as binary frames covering the broker's
// pending bytes (at most kMaxOutFrame each); the HTTP response, pongs and the close frame go
// between data frames, never inside one.
struct WebSocketStream {
  // The largest data frame written: large enough that headers cost nothing, small enough that a
  // pong is not held back long behind one.
  static constexpr std::size_t kMaxOutFrame = std::size_t{1} << 20;

  explicit WebSocketStream(net::WebSocketDecoder::Limits limits)
      : handshake(std::make_unique<net::WebSocketHandshake>()), decoder(limits) {}

  // Until the upgrade request is complete (null after).
  std::unique_ptr<net::WebSocketHandshake> handshake;
  net::WebSocketDecoder decoder;
  // Bytes received and not decoded yet, kept while the broker paused the connection's input.
  std::vector<std::uint8_t> input;
  std::size_t input_at = 0;
  // Transport bytes of our own to write between data frames: the HTTP response, pongs, the close.
  std::vector<std::uint8_t> output;
  std::size_t output_at = 0;
  // The data frame being written: its header and how much of it is out, its payload bytes left.
  std::array<std::uint8_t, net::kMaxWsHeader> header{};
  std::uint8_t header_size = 0;
  std::uint8_t header_sent = 0;
  std::uint64_t frame_left = 0;
  bool upgraded = false;    // the 101 is queued: frames flow
  bool close_sent = false;  // a close frame is queued (or none may be: an HTTP error was sent)

  bool between_frames() const { return frame_left == 0 && header_sent == header_size; }
  bool has_input() const { return input_at < input.size(); }
  bool has_output() const { return output_at < output.size() || header_sent < header_size; }
  void Queue(const std::vector<std::uint8_t>& bytes) {
    if (output_at == output.size()) {
      output.clear();
      output_at = 0;
    }
    output.insert(output.end(), bytes.begin(), bytes.end());
  }
};

struct Transport {
  std::unique_ptr<net::TlsSession> tls;  // null: no TLS
  // The client's address, for the log lines of a failure before the broker knows the connection
  // (a TLS handshake, a WebSocket upgrade). Emptied once no such line can come.
  std::string peer;
  config::CertUsername username_from = config::CertUsername::kNone;
  // TLS: a read stopped because OpenSSL must write first (a TLS 1.3 key update's answer): read
  // again once the socket is writable.
  bool read_wants_write = false;
  // Until the PROXY protocol header is read (listeners with proxy_protocol).
  std::unique_ptr<net::ProxyHeaderParser> proxy;
  std::unique_ptr<WebSocketStream> ws;  // null: MQTT straight on the stream

  bool tls_ready() const { return tls == nullptr || tls->handshake_done(); }
  // Bytes of the transport's own wait to be written (a TLS record, WebSocket framing).
  bool has_output() const {
    return (tls != nullptr && tls->pending_output()) || (ws != nullptr && ws->has_output());
  }
};

}  // namespace tinymq::server
