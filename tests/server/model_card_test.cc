#include "server/core/model_card.h"

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

class ModelCardTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
};

TEST_F(ModelCardTest, TheReadmeFrontMatterGivesLicenceAndSource) {
  dir_.Write("README.md",
             "---\nlanguage:\n  - en\nlicense: other\nlicense_name: llama3\nbase_model:\n"
             "  - meta-llama/Meta-Llama-3-8B\n---\n# Model\nlicense: not this one\n");
  dir_.Write("LICENSE", "MIT License\n");
  const v1::BaseModel model = ReadBaseModel(dir_.path());
  EXPECT_EQ(model.license(), "other (llama3)");
  EXPECT_EQ(model.license_origin(), "README.md");
  EXPECT_EQ(model.source(), "meta-llama/Meta-Llama-3-8B");
  EXPECT_EQ(model.path(), dir_.path());
}

TEST_F(ModelCardTest, QuotedScalarsAreUnquoted) {
  dir_.Write("README.md", "---\nlicense: \"apache-2.0\"\nmodel_name: 'tiny'\n---\n");
  const v1::BaseModel model = ReadBaseModel(dir_.path());
  EXPECT_EQ(model.license(), "apache-2.0");
  EXPECT_EQ(model.source(), "tiny");
}

TEST_F(ModelCardTest, WithoutALicenceKeyTheLicenceFileSpeaks) {
  dir_.Write("README.md", "# A model card without front matter\nlicense: ignored\n");
  dir_.Write("LICENSE.txt", "\n\n   Apache License\n   Version 2.0\n");
  const v1::BaseModel model = ReadBaseModel(dir_.path());
  EXPECT_EQ(model.license(), "Apache License");
  EXPECT_EQ(model.license_origin(), "LICENSE.txt");
  EXPECT_EQ(model.source(), std::filesystem::path(dir_.path()).filename().string())
      << "no front matter: the folder's name";
}

TEST_F(ModelCardTest, NothingToReadIsUnknownNotAnError) {
  v1::BaseModel model = ReadBaseModel(dir_.path());
  EXPECT_EQ(model.license(), "unknown");
  EXPECT_EQ(model.license_origin(), "");
  model = ReadBaseModel(dir_.path() + "/missing/");
  EXPECT_EQ(model.license(), "unknown");
  EXPECT_EQ(model.source(), "missing");
}

TEST_F(ModelCardTest, ValuesAreBoundedAndValidUtf8) {
  dir_.Write("README.md",
             "---\nlicense: " + std::string(5000, 'x') + "\nbase_model: \xff\xfe\n---\n");
  const v1::BaseModel model = ReadBaseModel(dir_.path());
  EXPECT_LE(model.license().size(), 256u);
  EXPECT_EQ(model.source(), "(not valid UTF-8)");
}

TEST(ModelCardRepoTest, TheBundledTinyModelDeclaresItsLicence) {
  const v1::BaseModel model = ReadBaseModel(TUNELEDGER_SOURCE_DIR "/models/tiny-llama");
  EXPECT_EQ(model.license(), "apache-2.0");
  EXPECT_EQ(model.license_origin(), "README.md");
}

}  // namespace
}  // namespace tuneledger
