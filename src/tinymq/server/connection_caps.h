#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

// ConnectionCaps: how many connections are open at once across all workers, in all and per
// source address, against [limits] max_connections and max_connections_per_address. A worker
// asks at accept (TryAdd), before the connection costs anything more than its socket, and gives
// the count back when the connection closes (Remove). A connection handed to another worker keeps
// its count: the receiving worker removes it when it closes.
//
// The kernel spreads one address's connections over the workers' SO_REUSEPORT sockets, so the
// counts are shared: the total is one atomic; the per-address counts (only with a per-address
// cap) are a map in 16 shards, each behind its own mutex, held for one hash lookup.
//
// Refusals are counted per cause, and TakeReport() hands a count to one caller at most every
// kReportInterval, so that a flood of refused connections makes one log line every few seconds.
//
// Threading: Thread-safe.
// Lifetime:  keeps only counts.
// Errors:    none; a refusal is a Verdict.

namespace tinymq::server {

// A source address, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d): the key of the per-address counts.
using AddressKey = std::array<std::uint8_t, 16>;

class ConnectionCaps {
 public:
  enum class Verdict : std::uint8_t { kAdmitted, kOverTotal, kOverAddress };
  // The key of a connection whose address is not known yet (a PROXY protocol listener's, until
  // its header is read): counted in the total only, until Move() gives it its address.
  static constexpr AddressKey kUnkeyed = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  static constexpr std::chrono::seconds kReportInterval{5};

  // 0: no cap.
  ConnectionCaps(std::size_t max_total, std::size_t max_per_address);
  ConnectionCaps(const ConnectionCaps&) = delete;
  ConnectionCaps& operator=(const ConnectionCaps&) = delete;

  // The address of `peer` as net::Listener writes it ("127.0.0.1:5000", "[::1]:5000"); all zeros
  // when it is not one.
  static AddressKey KeyOf(std::string_view peer);

  std::size_t max_total() const { return max_total_.load(std::memory_order_relaxed); }
  std::size_t max_per_address() const { return max_per_address_.load(std::memory_order_relaxed); }
  // True when TryAdd() and Remove() need a real key (KeyOf); otherwise any key does. Fixed at
  // construction (the addresses of open connections are kept only when it holds).
  bool per_address() const { return per_address_; }
  // New caps (a reload), for connections from now on. The per-address cap can change but not be
  // turned on or off (per_address()): `max_per_address` is then ignored and false returned.
  bool SetCaps(std::size_t max_total, std::size_t max_per_address);

  // Counts a new connection from `address` when both caps allow it; otherwise counts the refusal
  // under its cause.
  Verdict TryAdd(const AddressKey& address);
  // A connection TryAdd() admitted has closed.
  void Remove(const AddressKey& address);
  // A connection counted under `from` (kUnkeyed, or an address) turns out to come from `to` (a
  // PROXY protocol header): counted under `to` instead when its cap allows (true); otherwise
  // nothing changes, the refusal is counted, and the caller closes the connection (then
  // Remove(from)).
  bool Move(const AddressKey& from, const AddressKey& to);

  // The refusals for `cause` since the last report, when at least kReportInterval has passed since
  // then (one caller gets it); nullopt otherwise.
  // REQUIRES: cause is not kAdmitted.
  std::optional<std::uint64_t> TakeReport(Verdict cause, std::chrono::steady_clock::time_point now);

  std::size_t total() const { return total_.load(std::memory_order_relaxed); }
  // Refusals for `cause` since the start (for metrics; TakeReport's counts restart).
  std::uint64_t refused(Verdict cause) const {
    return refusals_[cause == Verdict::kOverTotal ? 0 : 1].ever.load(std::memory_order_relaxed);
  }
  std::size_t CountOf(const AddressKey& address) const;

 private:
  static constexpr std::size_t kShards = 16;
  struct KeyHash {
    std::size_t operator()(const AddressKey& key) const noexcept;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<AddressKey, std::uint32_t, KeyHash> counts;  // guarded by mu; never 0
  };
  struct Refusals {
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> ever{0};
    std::atomic<std::int64_t> next_report_ns{0};  // steady clock
  };
  Shard& ShardOf(const AddressKey& address) const;

  std::atomic<std::size_t> max_total_;
  std::atomic<std::size_t> max_per_address_;
  const bool per_address_;

  std::atomic<std::size_t> total_{0};
  mutable std::array<Shard, kShards> shards_;
  std::array<Refusals, 2> refusals_;  // kOverTotal, kOverAddress
};

}  // namespace tinymq::server
