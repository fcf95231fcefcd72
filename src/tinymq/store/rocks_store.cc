#include "tinymq/store/rocks_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace tinymq::store {
namespace {

constexpr std::string_view kFormatKey = "tinymq-store-format";
constexpr std::string_view kWayOut =
    "move the directory aside to start empty, or start with --repair";

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// RocksDB's info log, to a callback (warnings and errors only) instead of a file in the data
// directory.
class ForwardingLogger final : public rocksdb::Logger {
 public:
  explicit ForwardingLogger(std::function<void(std::string_view)> sink)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), sink_(std::move(sink)) {}

  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || !sink_) {
      return;
    }
    std::array<char, 1024> line{};
    std::vsnprintf(line.data(), line.size(), format, ap);  // NOLINT: RocksDB's own formats
    std::string_view text(line.data());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
      text.remove_suffix(1);
    }
    sink_(text);
  }

 private:
  std::function<void(std::string_view)> sink_;
};

class RocksStore final : public Store {
 public:
  RocksStore(std::string dir, std::unique_ptr<rocksdb::DB> db,
             std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : dir_(std::move(dir)), db_(std::move(db)), handles_(std::move(handles)) {}

  ~RocksStore() override {
    // Everything into tables: a restart then replays no log, and a repair (which rebuilds from
    // tables; it cannot place log records of other column families) finds it all.
    rocksdb::FlushOptions flush;
    flush.wait = true;
    (void)db_->Flush(flush, handles_);
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      (void)db_->DestroyColumnFamilyHandle(h);
    }
    (void)db_->Close();
  }

  util::Result<void, std::string> Write(const Batch& batch, bool sync) override {
    const Batch* one = &batch;
    return WriteAll(std::span<const Batch* const>(&one, 1), sync);
  }

  util::Result<void, std::string> WriteAll(std::span<const Batch* const> batches,
                                           bool sync) override {
    rocksdb::WriteBatch wb;
    for (const Batch* batch : batches) {
      if (auto added = Add(*batch, wb); !added) {
        return added;
      }
    }
    rocksdb::WriteOptions options;
    options.sync = sync;
    if (const rocksdb::Status s = db_->Write(options, &wb); !s.ok()) {
      return Fail("cannot write", s);
    }
    return {};
  }

  util::Result<void, std::string> Add(const Batch& batch, rocksdb::WriteBatch& wb) {
    for (const Batch::Op& op : batch.ops()) {
      rocksdb::ColumnFamilyHandle* cf = Handle(op.kind);
      rocksdb::Status s;
      switch (op.type) {
        case Batch::Type::kPut: s = wb.Put(cf, ToSlice(op.key), ToSlice(op.value)); break;
        case Batch::Type::kDelete: s = wb.Delete(cf, ToSlice(op.key)); break;
        case Batch::Type::kDeleteRange:
          s = wb.DeleteRange(cf, ToSlice(op.key), ToSlice(op.value));
          break;
      }
      if (!s.ok()) {
        return Fail("cannot prepare a write", s);
      }
    }
    return {};
  }

  util::Result<std::optional<std::string>, std::string> Get(Kind kind,
                                                            std::string_view key) override {
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), Handle(kind), ToSlice(key), &value);
    if (s.IsNotFound()) {
      return std::optional<std::string>();
    }
    if (!s.ok()) {
      return util::Unexpected(Message("cannot read", s));
    }
    return std::optional<std::string>(std::move(value));
  }

  util::Result<void, std::string> Scan(Kind kind, std::string_view prefix, const Visitor& f,
                                       std::string_view from) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), Handle(kind)));
    for (it->Seek(ToSlice(std::max(prefix, from)));
         it->Valid() && ToView(it->key()).starts_with(prefix); it->Next()) {
      if (!f(ToView(it->key()), ToView(it->value()))) {
        break;
      }
    }
    if (!it->status().ok()) {
      return util::Unexpected(Message("cannot read", it->status()));
    }
    return {};
  }

  util::Result<void, std::string> Sync() override {
    if (const rocksdb::Status s = db_->SyncWAL(); !s.ok()) {
      return Fail("cannot sync", s);
    }
    return {};
  }

  util::Result<void, std::string> Resume() override {
    if (const rocksdb::Status s = db_->Resume(); !s.ok()) {
      return Fail("cannot resume writing", s);
    }
    return {};
  }

 private:
  // handles_[0] is the default column family; the kinds follow in kKinds order.
  rocksdb::ColumnFamilyHandle* Handle(Kind kind) const {
    return handles_[1 + static_cast<std::size_t>(kind)];
  }
  std::string Message(std::string_view what, const rocksdb::Status& s) const {
    return dir_ + ": " + std::string(what) + " (" + s.ToString() + ")";
  }
  util::Result<void, std::string> Fail(std::string_view what, const rocksdb::Status& s) const {
    return util::Unexpected(Message(what, s));
  }

  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace

util::Result<std::unique_ptr<Store>, std::string> OpenRocksStore(const std::string& dir,
                                                                 const RocksOptions& options) {
  // Memory: the broker's own footprint is small, so RocksDB's must be bounded too. Memtables of all
  // column families together stay under kMemtables (a full one is flushed), blocks read back are
  // cached in one shared cache of kBlockCache, and the write-ahead log is flushed into tables
  // before it passes kWal (a rarely written column family would otherwise keep old logs alive).
  constexpr std::size_t kMemtables = std::size_t{32} << 20;
  constexpr std::size_t kBlockCache = std::size_t{16} << 20;
  constexpr std::uint64_t kWal = std::uint64_t{256} << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(kBlockCache);
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = kMemtables / 4;
  cf_options.max_write_buffer_number = 2;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  families.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (Kind kind : kKinds) {
    families.emplace_back(std::string(KindName(kind)), cf_options);
  }
  rocksdb::Options db_options;
  db_options.db_write_buffer_size = kMemtables;
  db_options.max_total_wal_size = kWal;
  db_options.max_background_jobs = 2;
  db_options.info_log = std::make_shared<ForwardingLogger>(options.log);
  db_options.create_if_missing = options.create;
  db_options.create_missing_column_families = options.create;
  if (options.repair) {
    if (const rocksdb::Status s = rocksdb::RepairDB(dir, db_options, families); !s.ok()) {
      return util::Unexpected(dir + ": repair failed (" + s.ToString() + "); move the " +
                              "directory aside to start empty");
    }
  }
  if (options.create) {
    // (RocksDB would create it too, after warning that it is missing.)
    std::error_code ignored;
    std::filesystem::create_directories(dir, ignored);
  }
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  const rocksdb::Status s = rocksdb::DB::Open(db_options, dir, families, &handles, &raw);
  if (!s.ok() && s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return util::Unexpected(dir + ": cannot open the store (" + s.ToString() +
                            "); another process, another tinymq say, is using it: stop it or " +
                            "choose another directory");
  }
  if (!s.ok()) {
    return util::Unexpected(dir + ": cannot open the store (" + s.ToString() + "); " +
                            std::string(kWayOut));
  }
  auto store = std::make_unique<RocksStore>(dir, std::unique_ptr<rocksdb::DB>(raw), handles);
  // The format: written by the first open, checked by every later one.
  std::string format;
  const rocksdb::Status got =
      raw->Get(rocksdb::ReadOptions(), handles[0], ToSlice(kFormatKey), &format);
  if (got.IsNotFound()) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    const std::string mine = std::to_string(kStoreFormat);
    if (const rocksdb::Status w = raw->Put(sync, handles[0], ToSlice(kFormatKey), mine); !w.ok()) {
      return util::Unexpected(dir + ": cannot write to the store (" + w.ToString() + ")");
    }
    return std::unique_ptr<Store>(std::move(store));
  }
  if (!got.ok()) {
    return util::Unexpected(dir + ": cannot read the store (" + got.ToString() + "); " +
                            std::string(kWayOut));
  }
  int version = 0;
  const auto [end, ec] = std::from_chars(format.data(), format.data() + format.size(), version);
  if (ec != std::errc() || end != format.data() + format.size() || version < 1) {
    return util::Unexpected(dir + ": not a tinymq store, or a damaged one (format '" + format +
                            "'); " + std::string(kWayOut));
  }
  if (version > kStoreFormat) {
    return util::Unexpected(dir + ": written by a newer tinymq (store format " +
                            std::to_string(version) + "; this one reads up to " +
                            std::to_string(kStoreFormat) +
                            "); use that version, or move the directory aside to start empty");
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tinymq::store
