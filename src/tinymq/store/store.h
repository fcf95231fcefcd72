#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tinymq/util/result.h"

// The store: what must survive a restart, as keys and values in one keyspace per kind of record
// (a RocksDB column family each), written in atomic batches. The broker turns persistent
// sessions, their subscriptions, queued and in-flight messages and incoming QoS 2 ids, retained
// messages and wills into records (records.h encodes them); this layer only keeps bytes, durably
// and in key order.
//
// Two backends: memory (tests; a broker without a data directory has no store at all) and
// RocksDB (rocks_store.h).
//
// Threading: a Store is thread-safe (workers write their own batches); a Batch is not.
// Lifetime:  Scan's views are valid during the callback only.
// Errors:    every call returns one line naming what failed (for RocksDB: the directory and the
//            library's status); nothing throws.

namespace tinymq::store {

// One keyspace per kind of record.
enum class Kind : std::uint8_t {
  kSessions,       // client id -> session state (expiry, ...)
  kSubscriptions,  // client id, filter -> options
  kQueues,         // client id, sequence -> queued or in-flight delivery (with its message)
  kIncoming,       // client id, packet id: QoS 2 PUBLISHes whose PUBREL is awaited
  kRetained,       // topic -> message
  kWills,          // client id -> will and when it is due
};
inline constexpr std::array<Kind, 6> kKinds = {Kind::kSessions, Kind::kSubscriptions, Kind::kQueues,
                                               Kind::kIncoming, Kind::kRetained,      Kind::kWills};
// "sessions", "subscriptions", ...: the column family names.
std::string_view KindName(Kind kind);

// Writes applied together, all or none.
class Batch {
 public:
  enum class Type : std::uint8_t {
    kPut,
    kDelete,
    kDeleteRange,  // every key in [key, value)
  };
  struct Op {
    Kind kind;
    Type type;
    std::string key;
    std::string value;
  };

  void Put(Kind kind, std::string_view key, std::string_view value) {
    ops_.push_back(Op{kind, Type::kPut, std::string(key), std::string(value)});
  }
  void Delete(Kind kind, std::string_view key) {
    ops_.push_back(Op{kind, Type::kDelete, std::string(key), {}});
  }
  // Deletes every key of `kind` from `begin` (included) to `end` (excluded). REQUIRES: begin <=
  // end.
  void DeleteRange(Kind kind, std::string_view begin, std::string_view end) {
    ops_.push_back(Op{kind, Type::kDeleteRange, std::string(begin), std::string(end)});
  }
  void Add(Op op) { ops_.push_back(std::move(op)); }
  bool empty() const { return ops_.empty(); }
  std::size_t size() const { return ops_.size(); }
  void Clear() { ops_.clear(); }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies `batch` atomically. `sync`: on return it is on stable storage (the write-ahead log is
  // synced), else it survives a crash of the process but maybe not of the machine.
  virtual util::Result<void, std::string> Write(const Batch& batch, bool sync) = 0;
  // Applies `batches` in order as one atomic write (group commit without copying them).
  virtual util::Result<void, std::string> WriteAll(std::span<const Batch* const> batches,
                                                   bool sync) = 0;
  virtual util::Result<std::optional<std::string>, std::string> Get(Kind kind,
                                                                    std::string_view key) = 0;
  // Calls f(key, value) for every record of `kind` whose key starts with `prefix` (and is not
  // below `from`), in key order (bytewise), until f returns false.
  using Visitor = std::function<bool(std::string_view key, std::string_view value)>;
  virtual util::Result<void, std::string> Scan(Kind kind, std::string_view prefix, const Visitor& f,
                                               std::string_view from = {}) = 0;
  // Makes every write so far durable (Write(..., sync=false) followed by Sync() is as durable as
  // Write(..., sync=true)).
  virtual util::Result<void, std::string> Sync() = 0;
  // After a failed write (a full disk, say): tries to make the store writable again. The failed
  // batch must be written again.
  virtual util::Result<void, std::string> Resume() = 0;
};

// A store that keeps everything in memory (gone with the process).
std::unique_ptr<Store> MakeMemoryStore();

}  // namespace tinymq::store
