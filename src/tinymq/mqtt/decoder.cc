#include "tinymq/mqtt/decoder.h"

#include <algorithm>
#include <cstring>

#include "tinymq/util/check.h"

namespace tinymq::mqtt {

std::span<std::uint8_t> Decoder::PrepareRead() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  }
  // Room wanted after end_: the rest of a packet whose size is known, else one read chunk.
  std::size_t want = options_.read_chunk;
  if (pending_ && pending_->packet_size() > buffered()) {
    want = std::max<std::size_t>(pending_->packet_size() - buffered(), 1);
  }
  if (buf_.size() - end_ < want && begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < want) {
    // Exactly what is needed, never more: the declared size was already checked against the max.
    std::vector<std::uint8_t> bigger(end_ + want);
    std::memcpy(bigger.data(), buf_.data(), end_);
    buf_.swap(bigger);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void Decoder::CommitRead(std::size_t n) {
  TINYMQ_CHECK(n <= buf_.size() - end_);
  end_ += n;
}

std::size_t Decoder::Feed(BinaryView bytes) {
  if (bytes.empty()) {
    return 0;
  }
  const std::span<std::uint8_t> room = PrepareRead();
  const std::size_t n = std::min(room.size(), bytes.size());
  std::memcpy(room.data(), bytes.data(), n);
  CommitRead(n);
  return n;
}

DecodeResult<std::optional<Packet>> Decoder::Next() {
  if (error_) {
    return util::Unexpected(*error_);
  }
  auto fail = [this](DecodeError e) -> DecodeResult<std::optional<Packet>> {
    error_ = e;
    return util::Unexpected(e);
  };
  const BinaryView pending(buf_.data() + begin_, buffered());
  if (!pending_) {
    auto header = ParseFixedHeader(pending, options_.max_packet_size);
    if (!header) {
      return fail(header.error());
    }
    if (!*header) {
      return std::optional<Packet>();
    }
    const FixedHeader& h = **header;
    if (!version_ && h.type != PacketType::kConnect) {
      return fail(DecodeError::kProtocolVersionUnknown);
    }
    if (h.type == PacketType::kAuth && version_ && *version_ != ProtocolVersion::kV5) {
      return fail(DecodeError::kReservedPacketType);
    }
    pending_ = h;
  }
  if (buffered() < pending_->packet_size()) {
    return std::optional<Packet>();
  }
  const FixedHeader h = *pending_;
  const BinaryView body(buf_.data() + begin_ + h.size, h.remaining_length);
  pending_.reset();
  begin_ += h.packet_size();
  auto packet = DecodePacket(h, body, version_.value_or(ProtocolVersion::kV311));
  if (!packet) {
    if (h.type == PacketType::kConnect && !version_) {
      version_ = PeekConnectVersion(body);  // lets the broker answer in the client's version
    }
    return fail(packet.error());
  }
  if (const auto* connect = std::get_if<Connect>(&*packet); connect && !version_) {
    version_ = connect->version;
  }
  return std::optional<Packet>(std::move(*packet));
}

void Decoder::Release() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    std::vector<std::uint8_t>().swap(buf_);
  }
}

}  // namespace tinymq::mqtt
