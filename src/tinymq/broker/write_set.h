#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tinymq/store/store.h"

// The writes a broker has made since the net layer last took them (Broker::TakeWrites): puts,
// deletes and range deletes in order, with the latest write of each key found in O(1), so that
// writes that cancel out within one batch never reach the store: a key put and deleted again
// before the batch is taken (a message queued and acknowledged within one loop turn) is dropped
// entirely when the put was its first ever ("fresh"), and a key put twice is written once, with
// the last value.
//
// Threading: Thread-compatible (one broker's).
// Errors:    none.

namespace tinymq::broker {

class WriteSet {
 public:
  // `fresh`: the key has never been written before (it cannot be in the store), so a delete that
  // follows within this set cancels the put entirely.
  void Put(store::Kind kind, std::string key, std::string value, bool fresh = false);
  // A put that is never cancelled nor overwritten in this set (a queue record spilled to the
  // store): not indexed, so it costs its bytes only.
  void Append(store::Kind kind, std::string key, std::string value);
  void Delete(store::Kind kind, std::string key);
  // Every key of `kind` in [begin, end). REQUIRES: begin <= end.
  void DeleteRange(store::Kind kind, std::string begin, std::string end);

  // Nothing to write.
  bool empty() const { return live_ == 0; }
  // Calls made so far (Put, Delete, DeleteRange), cancelled ones included: a caller compares two
  // readings to learn whether something it did wrote anything.
  std::uint64_t changes() const { return changes_; }
  // Appends the live writes to `batch`, in order, and empties the set.
  void MoveTo(store::Batch& batch);

 private:
  struct Entry {
    store::Batch::Op op;
    bool fresh = false;
    bool dead = false;
  };
  static std::string MapKey(store::Kind kind, std::string_view key);

  std::vector<Entry> ops_;
  // MapKey(kind, key) -> index in ops_ of the latest write of that key (after the last range
  // delete that covered it).
  std::unordered_map<std::string, std::size_t> latest_;
  std::size_t live_ = 0;
  std::uint64_t changes_ = 0;
};

}  // namespace tinymq::broker
