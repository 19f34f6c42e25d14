#include "server/core/stamped_cache.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

TEST(StampedCacheTest, KeepsAtMostItsCapacityDroppingTheLeastRecentlyUsed) {
  StampedCache<int> cache(/*capacity=*/2);
  int reads = 0;
  auto get = [&](const std::string& key, const std::string& stamp, int value) {
    return *cache.GetOrRead(key, stamp, [&] {
      ++reads;
      return std::make_shared<const int>(value);
    });
  };
  EXPECT_EQ(get("a", "1", 1), 1);
  EXPECT_EQ(get("b", "1", 2), 2);
  EXPECT_EQ(get("a", "1", 0), 1);  // a hit: b is now the least recently used
  EXPECT_EQ(get("c", "1", 3), 3);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(reads, 3);
  EXPECT_EQ(get("a", "1", 0), 1);
  EXPECT_EQ(get("c", "1", 0), 3);
  EXPECT_EQ(get("b", "1", 4), 4) << "b was dropped: read again";
  EXPECT_EQ(get("b", "2", 5), 5) << "another stamp: the files changed";
  EXPECT_EQ(reads, 5);
  EXPECT_EQ(cache.hits(), 3);
  EXPECT_EQ(cache.misses(), 5);
}

// Callers that ask for a key while another reads it under the same stamp wait for that read.
TEST(StampedCacheTest, ConcurrentCallersOfOneKeyReadItOnce) {
  StampedCache<int> cache(/*capacity=*/4);
  std::atomic<int> reads{0};
  std::vector<std::thread> callers;
  std::vector<int> got(8, 0);
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&, i] {
      got[i] = *cache.GetOrRead("model", "stamp", [&] {
        ++reads;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a slow tokenizer parse
        return std::make_shared<const int>(42);
      });
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(reads.load(), 1);
  EXPECT_EQ(got, std::vector<int>(8, 42));
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.hits(), 7);
}

// A folder's stamp changes with anything in it that a reading could depend on, and only then.
TEST(FolderStampTest, ChangesWhenAnEntryIsAddedRewrittenOrRemoved) {
  testing::TempDir dir;
  dir.Write("model/config.json", "{}");
  const std::string folder = dir.File("model");
  const std::string first = FolderStamp(folder);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(FolderStamp(folder), first) << "nothing changed";
  dir.Write("model/README.md", "---\nlicense: mit\n---\n");
  const std::string added = FolderStamp(folder);
  EXPECT_NE(added, first);
  dir.Write("model/config.json", R"({"hidden_size": 64})");
  const std::string rewritten = FolderStamp(folder);
  EXPECT_NE(rewritten, added);
  std::filesystem::remove(dir.File("model/README.md"));
  EXPECT_NE(FolderStamp(folder), rewritten);
  EXPECT_EQ(FolderStamp(dir.File("no-such-folder")), "");
  EXPECT_EQ(FolderStamp(dir.File("model/config.json")), "") << "a file does not list";
  EXPECT_EQ(FileStamp(dir.File("no-such-file")), "");
}

// A folder that has not changed for a while keeps its listing between stamps (stamped_cache.cc):
// an entry added, renamed or removed after that is still seen, by name.
TEST(FolderStampTest, ASettledFoldersKeptListingSeesEveryLaterChange) {
  testing::TempDir dir;
  dir.Write("model/config.json", "{}");
  const std::string folder = dir.File("model");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the settle time
  const std::string settled = FolderStamp(folder);
  EXPECT_EQ(FolderStamp(folder), settled) << "nothing changed";
  dir.Write("model/tokenizer.json", "{}");
  const std::string added = FolderStamp(folder);
  EXPECT_NE(added, settled);
  EXPECT_NE(added.find("|tokenizer.json="), std::string::npos) << added;
  std::filesystem::rename(dir.File("model/tokenizer.json"), dir.File("model/vocab.json"));
  const std::string renamed = FolderStamp(folder);
  EXPECT_EQ(renamed.find("|tokenizer.json="), std::string::npos) << renamed;
  EXPECT_NE(renamed.find("|vocab.json="), std::string::npos) << renamed;
  std::filesystem::remove(dir.File("model/vocab.json"));
  EXPECT_EQ(FolderStamp(folder).find("|vocab.json="), std::string::npos);
}

}  // namespace
}  // namespace tuneledger
