#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/mqtt/types.h"

// The incremental decoder of one connection's byte stream: bytes arrive in any split (one at a time
// works), whole packets come out as views into its buffer.
//
// Use: read from the socket into PrepareRead() and call CommitRead(n) (or hand over bytes with
// Feed), then call Next() until it returns no packet. The first packet of a stream must be
// CONNECT unless the version was given; a CONNECT that decodes sets the version for what follows.
//
// Memory: the buffer holds at most max(read_chunk, size of the packet being assembled) bytes.
// A packet's size is checked against max_packet_size as soon as its fixed header is complete,
// before any of its body is buffered, so a declared length never causes a large allocation.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  views in a packet from Next() stay valid until the next PrepareRead(), Feed() or
//            Release() call; several packets from consecutive Next() calls stay valid together.
// Errors:    Next() returns any DecodeError; after one the decoder stays failed (the connection is
//            to be closed) and repeats it.

namespace tinymq::mqtt {

class Decoder {
 public:
  struct Options {
    // Largest whole packet (fixed header included) accepted; 5.0's Maximum Packet Size.
    std::uint32_t max_packet_size = kMaxRemainingLength + 5;
    // Bytes PrepareRead offers when no larger packet is being assembled.
    std::size_t read_chunk = 4096;
  };

  Decoder() : Decoder(Options{}) {}
  explicit Decoder(Options options, std::optional<ProtocolVersion> version = std::nullopt)
      : options_(options), version_(version) {}

  std::optional<ProtocolVersion> version() const { return version_; }
  void set_version(ProtocolVersion version) { version_ = version; }
  void set_max_packet_size(std::uint32_t max) { options_.max_packet_size = max; }

  // Space for the next read, at least one byte.
  std::span<std::uint8_t> PrepareRead();
  // REQUIRES: n <= the size of the span PrepareRead() returned last.
  void CommitRead(std::size_t n);
  // Copies a prefix of `bytes` in and returns its length (at least 1 unless bytes is empty). Call
  // Next() until it yields nothing before feeding the rest.
  std::size_t Feed(BinaryView bytes);

  // The next whole packet; nullopt when more bytes are needed.
  DecodeResult<std::optional<Packet>> Next();

  // Bytes received and not yet returned as packets.
  std::size_t buffered() const { return end_ - begin_; }
  // Makes the packets returned so far pending again, so that every byte received stays in the
  // buffer (for a connection handed to another worker with its CONNECT). REQUIRES: no
  // PrepareRead() or Feed() since the first packet was returned (the buffer still starts with it).
  void Rewind() {
    begin_ = 0;
    pending_.reset();
  }
  // The bytes received and not yet returned as packets.
  BinaryView pending_bytes() const { return {buf_.data() + begin_, buffered()}; }
  // Bytes of buffer memory held.
  std::size_t capacity() const { return buf_.capacity(); }
  // Frees the buffer when nothing is pending (an idle connection then holds no buffer).
  void Release();
  // Hands the buffer over when nothing is pending (for a pool of buffers; empty otherwise), and
  // takes one back: AdoptBuffer REQUIRES that the decoder holds none (capacity() == 0). An adopted
  // buffer is used up to its size().
  std::vector<std::uint8_t> TakeBuffer();
  void AdoptBuffer(std::vector<std::uint8_t> buffer);

 private:
  Options options_;
  std::optional<ProtocolVersion> version_;
  std::optional<DecodeError> error_;
  std::vector<std::uint8_t> buf_;
  std::size_t begin_ = 0;               // first byte not yet returned as a packet
  std::size_t end_ = 0;                 // one past the last byte received
  std::optional<FixedHeader> pending_;  // header of the packet being assembled
};

}  // namespace tinymq::mqtt
