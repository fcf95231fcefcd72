#include "tinymq/store/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tinymq/store/rocks_store.h"

namespace tinymq::store {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system's temporary directory, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tinymq-store-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::pair<std::string, std::string>> ScanAll(Store& s, Kind kind,
                                                         std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  EXPECT_TRUE(s.Scan(kind, prefix, [&](std::string_view k, std::string_view v) {
                 out.emplace_back(k, v);
                 return true;
               }).has_value());
  return out;
}

// The same behaviour from both backends.
class StoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto opened = OpenRocksStore(dir_.path() + "/db");
      ASSERT_TRUE(opened.has_value()) << opened.error();
      store_ = std::move(*opened);
    } else {
      store_ = MakeMemoryStore();
    }
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, ABatchIsWrittenWholeAndKindsAreApart) {
  Batch b;
  b.Put(Kind::kSessions, "client-1", "s1");
  b.Put(Kind::kRetained, "client-1", "r1");  // same key, another kind
  b.Put(Kind::kSessions, "client-2", "s2");
  b.Delete(Kind::kSessions, "client-2");  // later in the batch wins
  ASSERT_TRUE(store_->Write(b, /*sync=*/true).has_value());
  EXPECT_EQ(store_->Get(Kind::kSessions, "client-1")->value_or("-"), "s1");
  EXPECT_EQ(store_->Get(Kind::kRetained, "client-1")->value_or("-"), "r1");
  EXPECT_FALSE(store_->Get(Kind::kSessions, "client-2")->has_value());
  EXPECT_FALSE(store_->Get(Kind::kWills, "client-1")->has_value());
}

TEST_P(StoreTest, ScanVisitsAPrefixInBytewiseOrderAndStopsWhenAsked) {
  Batch b;
  for (const char* key : {"a\x01"
                          "2",
                          "a\x01"
                          "1",
                          "a\x02", "b",
                          "a\xff"
                          "z",
                          "a"}) {
    b.Put(Kind::kQueues, key, std::string("v") + key);
  }
  b.Put(Kind::kQueues, std::string("a\0x", 3), "nul");  // keys may hold any byte
  ASSERT_TRUE(store_->Write(b, false).has_value());
  const auto all = ScanAll(*store_, Kind::kQueues, "a");
  std::vector<std::string> keys;
  for (const auto& [k, v] : all) {
    keys.push_back(k);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a", std::string("a\0x", 3),
                                            "a\x01"
                                            "1",
                                            "a\x01"
                                            "2",
                                            "a\x02",
                                            "a\xff"
                                            "z"}));
  EXPECT_EQ(ScanAll(*store_, Kind::kQueues, "a\x01").size(), 2U);
  EXPECT_TRUE(ScanAll(*store_, Kind::kQueues, "c").empty());
  int visited = 0;
  ASSERT_TRUE(store_
                  ->Scan(Kind::kQueues, "",
                         [&](std::string_view, std::string_view) { return ++visited < 3; })
                  .has_value());
  EXPECT_EQ(visited, 3);
}

TEST_P(StoreTest, ARangeDeleteRemovesFromBeginUpToEndOnlyAndScansStartWhereAsked) {
  Batch b;
  for (const char* key : {"q1", "q2", "q3", "q4", "r1"}) {
    b.Put(Kind::kQueues, key, "v");
  }
  b.Put(Kind::kRetained, "q2", "other kind");
  ASSERT_TRUE(store_->Write(b, false).has_value());
  Batch d;
  d.DeleteRange(Kind::kQueues, "q2", "q4");
  ASSERT_TRUE(store_->Write(d, true).has_value());
  std::vector<std::string> keys;
  for (const auto& [k, v] : ScanAll(*store_, Kind::kQueues, "")) {
    keys.push_back(k);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"q1", "q4", "r1"}));
  EXPECT_EQ(store_->Get(Kind::kRetained, "q2")->value_or("-"), "other kind");
  // A scan from a key within the prefix starts there.
  keys.clear();
  ASSERT_TRUE(store_
                  ->Scan(
                      Kind::kQueues, "q",
                      [&](std::string_view k, std::string_view) {
                        keys.emplace_back(k);
                        return true;
                      },
                      "q2")
                  .has_value());
  EXPECT_EQ(keys, (std::vector<std::string>{"q4"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "RocksDB" : "Memory";
                         });

TEST(RocksStoreTest, WhatWasWrittenIsThereAfterReopening) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  {
    auto s = OpenRocksStore(path);
    ASSERT_TRUE(s.has_value()) << s.error();
    Batch b;
    b.Put(Kind::kRetained, "m1", std::string("payload\0with nul", 16));
    b.Put(Kind::kWills, "c", "w");
    ASSERT_TRUE((*s)->Write(b, /*sync=*/true).has_value());
  }
  auto s = OpenRocksStore(path);
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ((*s)->Get(Kind::kRetained, "m1")->value_or("-"), std::string("payload\0with nul", 16));
  EXPECT_EQ((*s)->Get(Kind::kWills, "c")->value_or("-"), "w");
}

TEST(RocksStoreTest, AStoreOfANewerFormatIsRefusedAndLeftAlone) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  { ASSERT_TRUE(OpenRocksStore(path).has_value()); }
  {
    // What a later tinymq would leave: the format key says 2.
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    families.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
    for (Kind kind : kKinds) {
      families.emplace_back(std::string(KindName(kind)), rocksdb::ColumnFamilyOptions());
    }
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, families, &handles, &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[0], "tinymq-store-format", "2").ok());
    for (auto* h : handles) {
      (void)raw->DestroyColumnFamilyHandle(h);
    }
    delete raw;
  }
  auto refused = OpenRocksStore(path);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().find(path), std::string::npos) << refused.error();
  EXPECT_NE(refused.error().find("newer tinymq (store format 2; this one reads up to 1)"),
            std::string::npos)
      << refused.error();
  // Refused, not rewritten: it still says 2.
  EXPECT_FALSE(OpenRocksStore(path).has_value());
}

TEST(RocksStoreTest, ADirectoryThatIsNotAStoreIsRefusedWithTheWayOut) {
  TempDir dir;
  const std::string file = dir.path() + "/plain-file";
  { std::ofstream(file) << "not a database"; }
  auto refused = OpenRocksStore(file);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().find(file + ": cannot open the store"), std::string::npos)
      << refused.error();
  EXPECT_NE(refused.error().find("move the directory aside"), std::string::npos);
  EXPECT_NE(refused.error().find("--repair"), std::string::npos);

  // Without `create`, a missing store is an error too, not a silent fresh start.
  auto missing = OpenRocksStore(dir.path() + "/none",
                                RocksOptions{.create = false, .repair = false, .log = {}});
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().find("/none: cannot open the store"), std::string::npos)
      << missing.error();
}

}  // namespace
}  // namespace tinymq::store
