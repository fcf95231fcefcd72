#include "tinymq/server/connection_caps.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "tinymq/util/check.h"

namespace tinymq::server {

ConnectionCaps::ConnectionCaps(std::size_t max_total, std::size_t max_per_address)
    : max_total_(max_total),
      max_per_address_(max_per_address),
      per_address_(max_per_address != 0) {}

bool ConnectionCaps::SetCaps(std::size_t max_total, std::size_t max_per_address) {
  max_total_.store(max_total, std::memory_order_relaxed);
  if ((max_per_address != 0) != per_address_) {
    return false;
  }
  max_per_address_.store(max_per_address, std::memory_order_relaxed);
  return true;
}

bool ConnectionCaps::Move(const AddressKey& from, const AddressKey& to) {
  if (!per_address_ || from == to) {
    return true;
  }
  if (to == kUnkeyed) {
    return false;  // (KeyOf never gives it)
  }
  {
    Shard& shard = ShardOf(to);
    std::lock_guard lock(shard.mu);
    std::uint32_t& count = shard.counts[to];
    if (count >= max_per_address()) {
      if (count == 0) {
        shard.counts.erase(to);
      }
      refusals_[1].count.fetch_add(1, std::memory_order_relaxed);
      refusals_[1].ever.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    ++count;
  }
  if (from == kUnkeyed) {
    return true;  // counted in the total only until now
  }
  Shard& shard = ShardOf(from);
  std::lock_guard lock(shard.mu);
  if (const auto it = shard.counts.find(from); it != shard.counts.end() && --it->second == 0) {
    shard.counts.erase(it);
  }
  return true;
}

AddressKey ConnectionCaps::KeyOf(std::string_view peer) {
  AddressKey key{};
  std::string_view ip = peer;
  if (ip.starts_with('[')) {  // "[v6]:port"
    const std::size_t end = ip.find(']');
    ip = end == std::string_view::npos ? std::string_view() : ip.substr(1, end - 1);
  } else if (const std::size_t colon = ip.rfind(':'); colon != std::string_view::npos) {
    ip = ip.substr(0, colon);
  }
  const std::string text(ip);  // inet_pton needs a terminated string
  if (::inet_pton(AF_INET6, text.c_str(), key.data()) == 1) {
    return key;
  }
  std::array<std::uint8_t, 4> v4{};
  if (::inet_pton(AF_INET, text.c_str(), v4.data()) == 1) {
    key[10] = 0xff;
    key[11] = 0xff;
    std::memcpy(key.data() + 12, v4.data(), v4.size());
  }
  return key;
}

std::size_t ConnectionCaps::KeyHash::operator()(const AddressKey& key) const noexcept {
  // FNV-1a: the keys are addresses, not chosen by anyone to collide in a table of this size.
  std::uint64_t h = 14695981039346656037ULL;
  for (const std::uint8_t b : key) {
    h = (h ^ b) * 1099511628211ULL;
  }
  return static_cast<std::size_t>(h);
}

ConnectionCaps::Shard& ConnectionCaps::ShardOf(const AddressKey& address) const {
  return shards_[(KeyHash()(address) >> 32) % kShards];
}

ConnectionCaps::Verdict ConnectionCaps::TryAdd(const AddressKey& address) {
  const std::size_t before = total_.fetch_add(1, std::memory_order_relaxed);
  const std::size_t max_total = max_total_.load(std::memory_order_relaxed);
  if (max_total != 0 && before >= max_total) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    refusals_[0].count.fetch_add(1, std::memory_order_relaxed);
    refusals_[0].ever.fetch_add(1, std::memory_order_relaxed);
    return Verdict::kOverTotal;
  }
  if (per_address_ && address != kUnkeyed) {
    Shard& shard = ShardOf(address);
    std::lock_guard lock(shard.mu);
    std::uint32_t& count = shard.counts[address];  // a new entry (0) is below any cap
    if (count >= max_per_address()) {
      if (count == 0) {
        shard.counts.erase(address);
      }
      total_.fetch_sub(1, std::memory_order_relaxed);
      refusals_[1].count.fetch_add(1, std::memory_order_relaxed);
      refusals_[1].ever.fetch_add(1, std::memory_order_relaxed);
      return Verdict::kOverAddress;
    }
    ++count;
  }
  return Verdict::kAdmitted;
}

void ConnectionCaps::Remove(const AddressKey& address) {
  const std::size_t before = total_.fetch_sub(1, std::memory_order_relaxed);
  TINYMQ_DCHECK(before > 0);
  (void)before;
  if (!per_address_ || address == kUnkeyed) {
    return;
  }
  Shard& shard = ShardOf(address);
  std::lock_guard lock(shard.mu);
  const auto it = shard.counts.find(address);
  if (it == shard.counts.end()) {
    TINYMQ_DCHECK(false);  // removed more often than added: a bug
    return;
  }
  if (--it->second == 0) {
    shard.counts.erase(it);
  }
}

std::optional<std::uint64_t> ConnectionCaps::TakeReport(Verdict cause,
                                                        std::chrono::steady_clock::time_point now) {
  TINYMQ_DCHECK(cause != Verdict::kAdmitted);
  Refusals& r = refusals_[cause == Verdict::kOverTotal ? 0 : 1];
  const std::int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::int64_t next = r.next_report_ns.load(std::memory_order_relaxed);
  if (now_ns < next) {
    return std::nullopt;
  }
  const std::int64_t after =
      now_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(kReportInterval).count();
  if (!r.next_report_ns.compare_exchange_strong(next, after, std::memory_order_relaxed)) {
    return std::nullopt;  // another worker reports this time
  }
  return r.count.exchange(0, std::memory_order_relaxed);
}

std::size_t ConnectionCaps::CountOf(const AddressKey& address) const {
  Shard& shard = ShardOf(address);
  std::lock_guard lock(shard.mu);
  const auto it = shard.counts.find(address);
  return it == shard.counts.end() ? 0 : it->second;
}

}  // namespace tinymq::server
