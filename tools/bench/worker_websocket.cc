#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "tools/bench/connection.h"
#include "tools/bench/worker.h"
#include "tools/bench/ws_client.h"

// The WebSocket side of a Worker (--websocket): after the TCP connect, the HTTP upgrade; then
// every read is unwrapped from frames before the MQTT decoder sees it, and every flush wraps what
// MQTT wrote into one masked frame. worker.cc calls in here; MQTT (worker_protocol.cc) never sees
// the difference.

namespace tinymq::bench {

void Worker::StartUpgrade(Connection& c) {
  c.state = Connection::State::kUpgrading;
  const std::string key = NewWsKey(ws_random_);
  std::string accept = net::WebSocketAccept(key);
  if (accept.empty()) {
    Fail("cannot compute Sec-WebSocket-Accept (OpenSSL SHA-1 failed)");
    return;
  }
  c.ws = std::make_unique<WsLink>(std::move(accept));
  const std::string request = WsUpgradeRequest(broker_.text, options_.ws_path, key);
  c.ws->wire.assign(request.begin(), request.end());
  MarkDirty(c);
}

std::optional<std::size_t> Worker::Unwrap(Connection& c, std::span<std::uint8_t> bytes) {
  WsLink& ws = *c.ws;
  std::span<const std::uint8_t> in = bytes;
  if (c.state == Connection::State::kUpgrading) {
    const WsUpgradeResponse::Result r = ws.response.Feed(in);
    if (r.status == WsUpgradeResponse::Status::kRefused) {
      Close(c, "the broker refused the WebSocket upgrade: " + ws.response.error());
      return std::nullopt;
    }
    if (r.status == WsUpgradeResponse::Status::kNeedMore) {
      return 0;
    }
    in = in.subspan(r.consumed);
    OnConnected(c);  // CONNECT, in the first frame
  }
  // In place: the payload moves towards the start of `bytes`, never past the frames still to read.
  std::size_t produced = 0;
  while (!in.empty()) {
    const net::WsStep step = ws.decoder.Decode(in, bytes.subspan(produced));
    in = in.subspan(step.consumed);
    produced += step.produced;
    if (step.consumed == 0 && step.event == net::WsEvent::kNone) {
      break;  // cannot happen: in place, the output space is never smaller than the input left
    }
    switch (step.event) {
      case net::WsEvent::kNone:
      case net::WsEvent::kPong: break;
      case net::WsEvent::kPing:
        AppendWsControl(net::WsOpcode::kPong, ws.decoder.control_payload(), ws_random_, ws.wire);
        MarkDirty(c);
        break;
      case net::WsEvent::kClose:
        Close(c, "the broker closed the WebSocket connection (close code " +
                     std::to_string(ws.decoder.close_code()) + ")");
        return std::nullopt;
      case net::WsEvent::kError: {
        // Not the broker's choice to close: the run cannot trust what this connection receives.
        const std::string why = "bad WebSocket frame from the broker: " + ws.decoder.error();
        Fail(c.spec.client_id + ": " + why);
        Close(c, why);
        return std::nullopt;
      }
    }
  }
  return produced;
}

void Worker::FrameOutput(Connection& c) {
  WsLink& ws = *c.ws;
  if (c.out_done < c.out.size()) {
    AppendWsData(std::span<const std::uint8_t>(c.out).subspan(c.out_done), ws_random_, ws.wire);
    c.out.clear();
    c.out_done = 0;
  }
  if (ws.wire_done == ws.wire.size()) {
    ws.wire.clear();
    ws.wire_done = 0;
  }
}

}  // namespace tinymq::bench
