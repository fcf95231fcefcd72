#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tinymq/store/store.h"
#include "tinymq/util/result.h"

// The RocksDB store: one database in a directory, one column family per store::Kind, and a format
// version in the default column family so that a store written by a newer tinymq is refused
// rather than misread.
//
// Errors (one line, naming the directory and the way out), e.g.
//   "data/: cannot open the store (IO error: ...); move the directory aside to start empty, or
//    start with --repair"
//   "data/: written by a newer tinymq (store format 2; this one reads up to 1); use that version,
//    or move the directory aside to start empty"
// The store is never discarded or rewritten to make an error go away.

namespace tinymq::store {

// The format this build writes and reads.
inline constexpr int kStoreFormat = 1;

struct RocksOptions {
  // Create the directory and an empty store when there is none.
  bool create = true;
  // Run RocksDB's repair on the directory before opening it (--repair).
  bool repair = false;
  // Where RocksDB's own warnings and errors go (one line each; null: dropped). RocksDB writes no
  // LOG file of its own: on a full disk that file cannot be written either.
  std::function<void(std::string_view)> log;
};

util::Result<std::unique_ptr<Store>, std::string> OpenRocksStore(const std::string& dir,
                                                                 const RocksOptions& options = {});

}  // namespace tinymq::store
