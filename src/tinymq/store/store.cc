#include "tinymq/store/store.h"

#include <algorithm>
#include <map>
#include <mutex>

namespace tinymq::store {

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kSessions: return "sessions";
    case Kind::kSubscriptions: return "subscriptions";
    case Kind::kQueues: return "queues";
    case Kind::kIncoming: return "incoming";
    case Kind::kRetained: return "retained";
    case Kind::kWills: return "wills";
  }
  return "?";
}

namespace {

class MemoryStore final : public Store {
 public:
  util::Result<void, std::string> Write(const Batch& batch, bool sync) override {
    const Batch* one = &batch;
    return WriteAll(std::span<const Batch* const>(&one, 1), sync);
  }

  util::Result<void, std::string> WriteAll(std::span<const Batch* const> batches,
                                           bool /*sync*/) override {
    const std::lock_guard lock(mu_);
    for (const Batch* batch : batches) {
      Apply(*batch);
    }
    return {};
  }

  void Apply(const Batch& batch) {
    for (const Batch::Op& op : batch.ops()) {
      auto& table = tables_[static_cast<std::size_t>(op.kind)];
      switch (op.type) {
        case Batch::Type::kPut: table.insert_or_assign(op.key, op.value); break;
        case Batch::Type::kDelete: table.erase(op.key); break;
        case Batch::Type::kDeleteRange:
          table.erase(table.lower_bound(op.key), table.lower_bound(op.value));
          break;
      }
    }
  }

  util::Result<std::optional<std::string>, std::string> Get(Kind kind,
                                                            std::string_view key) override {
    const std::lock_guard lock(mu_);
    const auto& table = tables_[static_cast<std::size_t>(kind)];
    auto it = table.find(key);
    if (it == table.end()) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(it->second);
  }

  util::Result<void, std::string> Scan(Kind kind, std::string_view prefix, const Visitor& f,
                                       std::string_view from) override {
    const std::lock_guard lock(mu_);
    const auto& table = tables_[static_cast<std::size_t>(kind)];
    for (auto it = table.lower_bound(std::max(prefix, from));
         it != table.end() && it->first.starts_with(prefix); ++it) {
      if (!f(it->first, it->second)) {
        break;
      }
    }
    return {};
  }

  util::Result<void, std::string> Sync() override { return {}; }
  util::Result<void, std::string> Resume() override { return {}; }

 private:
  std::mutex mu_;
  // std::less<>: lookups by string_view; std::string compares bytewise like RocksDB's default.
  std::array<std::map<std::string, std::string, std::less<>>, kKinds.size()> tables_;
};

}  // namespace

std::unique_ptr<Store> MakeMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace tinymq::store
