// WorkerTokens (server/core/worker_tokens.h): tokens are the HMAC-SHA256 of their documented
// messages (known answers computed with Python's hmac module), from any thread.
#include "server/core/worker_tokens.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tuneledger {
namespace {

const std::string kKey(32, 'k');

TEST(WorkerTokensTest, TokensAreTheHmacSha256OfTheirMessagesInHex) {
  const WorkerTokens tokens(kKey);
  ASSERT_TRUE(tokens.Valid());
  // hmac.new(b"k" * 32, b"lease\0" b"17\0" b"2\0" b"worker-a", hashlib.sha256).hexdigest()
  EXPECT_EQ(tokens.Lease("17", 2, "worker-a"),
            "f8ce6a90902faff1213e9e610aaa8fab6566b2e6ed4675f3fe38d85c45bcc632");
  // hmac.new(b"k" * 32, b"session\0" b"worker-a", hashlib.sha256).hexdigest()
  EXPECT_EQ(tokens.Session("worker-a"),
            "87a4794eb7958a5c6c1ee5e70c4ded70a0a573068693a7379047a01b53a742e1");
}

TEST(WorkerTokensTest, ACopySharesTheKeyAndThreadsComputeTheSameTokens) {
  const WorkerTokens tokens = WorkerTokens(kKey);
  const std::string expected = tokens.Lease("17", 2, "worker-a");
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (tokens.Lease("17", 2, "worker-a") != expected) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const int mismatch : mismatches) EXPECT_EQ(mismatch, 0);
  EXPECT_NE(tokens.Lease("17", 3, "worker-a"), expected);
}

TEST(WorkerTokensTest, WithoutAKeyNoTokenMatches) {
  const WorkerTokens none;
  EXPECT_FALSE(none.Valid());
  EXPECT_EQ(none.Lease("17", 2, "worker-a"), "");
  EXPECT_FALSE(WorkerTokens::Matches(none.Lease("17", 2, "worker-a"), ""));
  EXPECT_FALSE(WorkerTokens(std::string()).Valid());
}

}  // namespace
}  // namespace tuneledger
