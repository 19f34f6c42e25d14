#include "base/bounded_text.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger {
namespace {

using ::testing::EndsWith;

TEST(BoundedTextTest, ShortTextIsUnchanged) {
  EXPECT_EQ(BoundedText("tuneledger-train: error", 64), "tuneledger-train: error");
  EXPECT_EQ(BoundedText("", 0), "");
}

TEST(BoundedTextTest, LongTextIsCutAndSaysHowMuch) {
  const std::string text(10000, 'x');
  const std::string bounded = BoundedText(text, 2048);
  EXPECT_LE(bounded.size(), 2048u);
  EXPECT_EQ(bounded.substr(0, 2016), text.substr(0, 2016));
  EXPECT_THAT(bounded, EndsWith(" [7984 more bytes]"));
}

TEST(BoundedTextTest, NeverSplitsAUtf8Character) {
  // "é" is two bytes; "€" three: whatever the limit, the head stays valid UTF-8.
  for (const std::string unit : {"\xc3\xa9", "\xe2\x82\xac"}) {
    std::string text;
    for (int i = 0; i < 100; ++i) text += unit;
    for (size_t limit = 33; limit < 60; ++limit) {
      const std::string bounded = BoundedText(text, limit);
      const size_t head = bounded.find(" [");
      ASSERT_NE(head, std::string::npos);
      EXPECT_EQ(head % unit.size(), 0u) << "limit " << limit;
    }
  }
}

}  // namespace
}  // namespace tuneledger
