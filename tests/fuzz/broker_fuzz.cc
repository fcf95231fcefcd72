// libFuzzer target for the broker core's connection state machine: several clients of one Broker
// send arbitrary bytes, vanish, read their output in pieces, while the fake clock moves. Whatever
// they do, the broker must not crash, leak (ASan), hit undefined behaviour (UBSan) or break its
// own invariants (TINYMQ_CHECK), and what it writes must always be well-formed MQTT: every byte
// of output is decoded, in the version the connection speaks.
//
// Input format: tests/fuzz/broker_fuzz.h. No state outlives one input.

#include "tests/fuzz/broker_fuzz.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "tinymq/broker/broker.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/store/store.h"
#include "tinymq/util/check.h"

namespace tinymq::broker::fuzz {
namespace {

// Enhanced authentication for method "F": data "go" asks for another round, "ok" succeeds,
// anything else fails.
class FuzzAuthenticator : public Authenticator {
 public:
  class Exchange : public AuthExchange {
   public:
    AuthStep Next(mqtt::BinaryView data) override {
      AuthStep step;
      if (data.AsString() == "go") {
        step.outcome = AuthStep::Outcome::kContinue;
        step.data.assign({'?'});
      } else if (data.AsString() == "ok") {
        step.outcome = AuthStep::Outcome::kSuccess;
      }
      return step;
    }
  };
  std::unique_ptr<AuthExchange> Begin(std::string_view method, std::string_view) override {
    return method == "F" ? std::make_unique<Exchange>() : nullptr;
  }
};

struct Client {
  std::optional<ConnectionId> id;
  // Decodes what the broker writes; its version follows the CONNECT the client sent (sniffed).
  std::optional<mqtt::Decoder> reader;
  std::vector<std::uint8_t> sent;  // the first bytes sent, to learn the protocol version
};

class Harness {
 public:
  Harness() {
    limits_.max_inflight = 3;
    limits_.max_queued_messages = 16;
    limits_.output_high_water = 512;
    limits_.max_packet_size = 4096;
    limits_.receive_maximum = 3;
    limits_.topic_alias_maximum = 4;
    limits_.outbound_topic_alias_maximum = 2;
    Start();
  }

  // A broker on the store, restored from it.
  void Start() {
    broker_ = std::make_unique<Broker>(limits_);
    broker_->set_authenticator(&authenticator_);
    Durability d;
    d.store = store_.get();
    d.queue_head = 2;  // spill early
    broker_->AttachStore(d);
    auto restored = broker_->Restore(now_, /*retained=*/true);
    TINYMQ_CHECK(restored.has_value());  // it wrote every record itself
    Commit();
  }

  void Commit() {
    store::Batch batch;
    if (const std::uint64_t epoch = broker_->TakeWrites(batch); epoch != 0) {
      TINYMQ_CHECK(store_->Write(batch, true).has_value());
      broker_->OnDurable(epoch, now_);
    }
  }

  void Run(const std::uint8_t* data, std::size_t size) {
    std::size_t at = 0;
    auto next = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
    while (at < size) {
      const std::uint8_t op_byte = next();
      Client& c = clients_[op_byte & 3U];
      switch (static_cast<Op>((op_byte >> 2) & 7U)) {
        case Op::kData: {
          const std::size_t n = std::min<std::size_t>(next(), size - at);
          Feed(c, data + at, n);
          at += n;
          break;
        }
        case Op::kPeerClose:
          if (c.id) {
            broker_->OnPeerClosed(*c.id, now_);
          }
          break;
        case Op::kAdvance:
          now_ += std::chrono::milliseconds(100 * next());
          broker_->OnTimer(now_);
          break;
        case Op::kDrain: Drain(c, SIZE_MAX); break;
        case Op::kDrainSome: Drain(c, next()); break;
        case Op::kCommit: Commit(); break;
        case Op::kRestart:
          broker_.reset();
          for (Client& each : clients_) {
            each.id.reset();
          }
          Start();
          break;
        default: break;
      }
      Settle();
    }
    Commit();  // output held for durability goes, so that the connections can close
    for (Client& c : clients_) {
      if (c.id) {
        broker_->OnPeerClosed(*c.id, now_);
        Drain(c, SIZE_MAX);
      }
    }
    Settle();
    Commit();
    Settle();
    TINYMQ_CHECK(broker_->connection_count() == 0);
  }

 private:
  void Feed(Client& c, const std::uint8_t* bytes, std::size_t n) {
    if (!c.id) {
      c.id = broker_->Accept("fuzz", now_);
      c.reader.reset();
      c.sent.clear();
    }
    if (c.sent.size() < 64) {
      c.sent.insert(c.sent.end(), bytes, bytes + std::min<std::size_t>(n, 64));
    }
    std::size_t done = 0;
    while (done < n && !broker_->ShouldClose(*c.id)) {
      const std::span<std::uint8_t> room = broker_->ReadBuffer(*c.id);
      TINYMQ_CHECK(!room.empty());
      const std::size_t k = std::min(room.size(), n - done);
      std::memcpy(room.data(), bytes + done, k);
      broker_->OnRead(*c.id, k, now_);
      done += k;
    }
  }

  // The client reads up to `limit` bytes of output and decodes them.
  void Drain(Client& c, std::size_t limit) {
    if (!c.id) {
      return;
    }
    const std::vector<std::uint8_t> all = broker_->CopyOutput(*c.id);
    TINYMQ_CHECK(all.size() == broker_->OutputSize(*c.id));
    // The pieces a writev would take are the same bytes, in order.
    std::array<Broker::OutputChunk, 3> chunks;
    std::size_t at = 0;
    for (std::size_t i = 0, k = broker_->Output(*c.id, chunks); i < k; ++i) {
      TINYMQ_CHECK(chunks[i].size != 0 && at + chunks[i].size <= all.size());
      TINYMQ_CHECK(std::memcmp(all.data() + at, chunks[i].data, chunks[i].size) == 0);
      at += chunks[i].size;
    }
    const std::span<const std::uint8_t> out(all);
    const std::size_t n = std::min(limit, out.size());
    if (n == 0) {
      return;
    }
    if (!c.reader) {
      // The broker answers in the version of the client's CONNECT; 3.1.1 when it refused one.
      std::optional<mqtt::ProtocolVersion> v;
      if (c.sent.size() > 8) {
        v = mqtt::PeekConnectVersion(mqtt::BinaryView(c.sent.data() + 2, c.sent.size() - 2));
      }
      mqtt::Decoder::Options o;
      c.reader.emplace(o, v.value_or(mqtt::ProtocolVersion::kV311));
    }
    std::size_t fed = 0;
    while (fed < n) {
      fed += c.reader->Feed(mqtt::BinaryView(out.data() + fed, n - fed));
      for (;;) {
        auto p = c.reader->Next();
        if (!p) {
          // The broker wrote something a client cannot decode. Unless the sniffed version was a
          // guess (a CONNECT split oddly), that is a bug.
          if (c.sent.size() > 8 && c.sent[0] == 0x10) {
            std::fprintf(stderr, "broker output does not decode: %s; output:",
                         std::string(mqtt::Describe(p.error())).c_str());
            for (std::size_t i = 0; i < n; ++i) {
              std::fprintf(stderr, " %02x", out[i]);
            }
            std::fprintf(stderr, "\n");
          }
          TINYMQ_CHECK(c.sent.size() <= 8 || c.sent[0] != 0x10);
          c.reader.reset();
          broker_->OnWritten(*c.id, n, now_);
          return;
        }
        if (!p->has_value()) {
          break;
        }
      }
    }
    broker_->OnWritten(*c.id, n, now_);
  }

  // What the net layer does after each turn: close what the broker wants closed once flushed.
  void Settle() {
    for (ConnectionId id : broker_->TakeDirty()) {
      (void)id;
    }
    for (Client& c : clients_) {
      if (c.id && broker_->ShouldClose(*c.id) && broker_->OutputSize(*c.id) == 0) {
        broker_->Release(*c.id);
        c.id.reset();
      } else if (c.id && broker_->ShouldClose(*c.id)) {
        Drain(c, SIZE_MAX);
        broker_->Release(*c.id);
        c.id.reset();
      }
    }
  }

  FuzzAuthenticator authenticator_;
  Limits limits_;
  std::unique_ptr<store::Store> store_ = store::MakeMemoryStore();
  std::unique_ptr<Broker> broker_;
  Instant now_ = Instant{} + std::chrono::hours(1);
  std::array<Client, kConnections> clients_;
};

}  // namespace
}  // namespace tinymq::broker::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinymq::broker::fuzz::Harness h;
  h.Run(data, size);
  return 0;
}
