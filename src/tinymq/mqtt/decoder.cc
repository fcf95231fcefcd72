#include "tinymq/mqtt/decoder.h"

#include <algorithm>
#include <cstring>

#include "tinymq/util/check.h"

namespace tinymq::mqtt {
namespace {

// A read offers room for at least a whole fixed header.
constexpr std::size_t kMinReadChunk = 8;

}  // namespace

std::span<std::uint8_t> Decoder::PrepareRead() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  }
  // Bytes still missing from the packet being assembled (0 when its size is not known yet).
  const std::size_t need =
      pending_ && pending_->packet_size() > buffered() ? pending_->packet_size() - buffered() : 0;
  const std::size_t want = std::max<std::size_t>(need, 1);
  if (buf_.size() - end_ < want && begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < want) {
    // Room for the whole packet being assembled, or one read chunk when its size is unknown: the
    // declared size was already checked against the maximum, so this never exceeds it.
    const std::size_t chunk = std::max<std::size_t>(options_.read_chunk, kMinReadChunk);
    std::size_t size = std::max(end_ + need, chunk);
    if (size <= end_) {
      size = end_ + chunk;  // only when the caller skipped Next() (see Feed)
    }
    std::vector<std::uint8_t> bigger(size);
    if (end_ > 0) {
      std::memcpy(bigger.data(), buf_.data(), end_);
    }
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

std::vector<std::uint8_t> Decoder::TakeBuffer() {
  std::vector<std::uint8_t> out;
  if (begin_ == end_) {
    begin_ = end_ = 0;
    out.swap(buf_);
  }
  return out;
}

void Decoder::AdoptBuffer(std::vector<std::uint8_t> buffer) {
  TINYMQ_CHECK(buf_.capacity() == 0 && begin_ == end_);
  begin_ = end_ = 0;
  buf_ = std::move(buffer);
}

void Decoder::Release() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    std::vector<std::uint8_t>().swap(buf_);
  }
}

}  // namespace tinymq::mqtt
