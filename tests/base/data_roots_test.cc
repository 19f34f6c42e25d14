#include "base/data_roots.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;
using ::tuneledger::testing::TempDir;

class DataRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.File("shared/models/m"));
    fs::create_directories(dir_.File("alice"));
    fs::create_directories(dir_.File("outside"));
    for (const char* file : {"shared/train.jsonl", "alice/mine.jsonl", "outside/secret.json"}) {
      std::ofstream(dir_.File(file)) << "{}\n";
    }
    // A link inside a root that points out of it.
    fs::create_symlink(dir_.File("outside/secret.json"), dir_.File("shared/escape.jsonl"));
    std::string error;
    std::optional<DataRoots> roots =
        DataRoots::Parse({dir_.File("shared"), "alice=" + dir_.File("alice")}, &error);
    ASSERT_TRUE(roots.has_value()) << error;
    roots_ = *roots;
  }

  std::string Canonical(const std::string& name) {
    return fs::weakly_canonical(dir_.File(name)).string();
  }

  TempDir dir_;
  DataRoots roots_;
};

TEST_F(DataRootsTest, PathsInsideARootResolveToTheirCanonicalForm) {
  EXPECT_EQ(roots_.Resolve("bob", dir_.File("shared/train.jsonl")),
            Canonical("shared/train.jsonl"));
  EXPECT_EQ(roots_.Resolve("bob", dir_.File("shared/models/../train.jsonl")),
            Canonical("shared/train.jsonl"));
  // Relative paths are relative to a root; a file that does not exist yet still resolves.
  EXPECT_EQ(roots_.Resolve("bob", "models/m"), Canonical("shared/models/m"));
  EXPECT_EQ(roots_.Resolve("bob", "new.jsonl"), Canonical("shared/new.jsonl"));
  // A tenant's own root comes first for relative paths.
  EXPECT_EQ(roots_.Resolve("alice", "mine.jsonl"), Canonical("alice/mine.jsonl"));
}

TEST_F(DataRootsTest, NothingOutsideTheRootsResolvesWhetherItExistsOrNot) {
  for (const std::string& path :
       {dir_.File("outside/secret.json"), dir_.File("outside/missing.json"),
        dir_.File("shared/escape.jsonl"), dir_.File("shared/../outside/secret.json"),
        std::string("../outside/secret.json"), std::string("/etc/shadow"),
        std::string("/proc/self/environ"), std::string("../../../etc/passwd"), std::string("")}) {
    EXPECT_FALSE(roots_.Resolve("bob", path).has_value()) << path;
  }
}

TEST_F(DataRootsTest, ATenantsRootIsItsOwn) {
  EXPECT_FALSE(roots_.Resolve("bob", dir_.File("alice/mine.jsonl")).has_value());
  EXPECT_EQ(roots_.Resolve("alice", dir_.File("alice/mine.jsonl")), Canonical("alice/mine.jsonl"));
  // A worker runs every tenant's leases.
  EXPECT_EQ(roots_.Resolve("", dir_.File("alice/mine.jsonl"), /*any_tenant=*/true),
            Canonical("alice/mine.jsonl"));
}

TEST_F(DataRootsTest, BadRootsAreErrorsNamingTheValue) {
  std::string error;
  EXPECT_FALSE(DataRoots::Parse({dir_.File("nope")}, &error).has_value());
  EXPECT_NE(error.find("nope"), std::string::npos) << error;
  EXPECT_FALSE(DataRoots::Parse({"=" + dir_.File("shared")}, &error).has_value());
  EXPECT_NE(error.find("TENANT=DIR"), std::string::npos) << error;
  EXPECT_FALSE(DataRoots::Parse({""}, &error).has_value());
  std::optional<DataRoots> none = DataRoots::Parse({}, &error);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(none->Resolve("t", dir_.File("shared/train.jsonl")).has_value());
}

}  // namespace
}  // namespace tuneledger
