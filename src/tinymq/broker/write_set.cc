#include "tinymq/broker/write_set.h"

#include <utility>

namespace tinymq::broker {

std::string WriteSet::MapKey(store::Kind kind, std::string_view key) {
  std::string k;
  k.reserve(key.size() + 1);
  k.push_back(static_cast<char>(kind));
  k.append(key);
  return k;
}

void WriteSet::Put(store::Kind kind, std::string key, std::string value, bool fresh) {
  ++changes_;
  auto [it, inserted] = latest_.try_emplace(MapKey(kind, key), ops_.size());
  if (!inserted) {
    Entry& e = ops_[it->second];
    if (e.op.type != store::Batch::Type::kPut) {
      e.fresh = false;  // deleted before: the store may hold it
    }
    e.op.type = store::Batch::Type::kPut;
    e.op.value = std::move(value);
    return;
  }
  ops_.push_back(
      Entry{store::Batch::Op{kind, store::Batch::Type::kPut, std::move(key), std::move(value)},
            fresh, false});
  ++live_;
}

void WriteSet::Append(store::Kind kind, std::string key, std::string value) {
  ++changes_;
  ops_.push_back(
      Entry{store::Batch::Op{kind, store::Batch::Type::kPut, std::move(key), std::move(value)},
            false, false});
  ++live_;
}

void WriteSet::Delete(store::Kind kind, std::string key) {
  ++changes_;
  auto [it, inserted] = latest_.try_emplace(MapKey(kind, key), ops_.size());
  if (!inserted) {
    Entry& e = ops_[it->second];
    if (e.op.type == store::Batch::Type::kPut && e.fresh) {
      e.dead = true;  // never written anywhere: nothing to delete either
      --live_;
      latest_.erase(it);
      return;
    }
    e.op.type = store::Batch::Type::kDelete;
    e.op.value.clear();
    return;
  }
  ops_.push_back(
      Entry{store::Batch::Op{kind, store::Batch::Type::kDelete, std::move(key), {}}, false, false});
  ++live_;
}

void WriteSet::DeleteRange(store::Kind kind, std::string begin, std::string end) {
  ++changes_;
  // Writes of keys in the range are superseded. Earlier ones stay (the range delete, applied after
  // them, removes them anyway); they are just no longer the latest write of their key.
  for (auto it = latest_.begin(); it != latest_.end();) {
    const store::Batch::Op& op = ops_[it->second].op;
    if (op.kind == kind && op.key >= begin && op.key < end) {
      it = latest_.erase(it);
    } else {
      ++it;
    }
  }
  ops_.push_back(Entry{
      store::Batch::Op{kind, store::Batch::Type::kDeleteRange, std::move(begin), std::move(end)},
      false, false});
  ++live_;
}

void WriteSet::MoveTo(store::Batch& batch) {
  for (Entry& e : ops_) {
    if (!e.dead) {
      batch.Add(std::move(e.op));
    }
  }
  ops_.clear();
  latest_.clear();
  live_ = 0;
}

}  // namespace tinymq::broker
