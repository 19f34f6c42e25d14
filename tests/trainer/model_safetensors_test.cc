// safetensors reader and writer: round trips, every hostile-file rule, and a seeded fuzz run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "lm/trainer_error.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

using model_test::TrainErrorMessage;
using ::testing::HasSubstr;
using ::tuneledger::testing::TempDir;

// A file image: 8-byte little-endian length (`declared`, default the header's), header, data.
std::string Image(const std::string& header, size_t data_bytes, int64_t declared = -1) {
  const uint64_t length = declared < 0 ? header.size() : static_cast<uint64_t>(declared);
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return bytes + header + std::string(data_bytes, '\x01');
}

TEST(SafetensorsTest, RoundTripKeepsDtypesShapesValuesAndMetadata) {
  const TempDir temp_dir;
  const std::string path = temp_dir.File("t.safetensors");
  torch::manual_seed(1);
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"z.f32", torch::randn({3, 5})},                         // [3,5]
      {"a.bf16", torch::randn({4}).to(torch::kBFloat16)},      // [4]
      {"m.f16", torch::randn({2, 2, 2}).to(torch::kFloat16)},  // [2,2,2]
      {"ids", torch::arange(7, torch::kInt64)},                // [7]
      {"flags", torch::tensor({true, false, true})},           // [3]
      {"scalar", torch::tensor(2.5f)},                         // []
      {"empty", torch::empty({0, 3})},                         // [0,3]
      {"strided", torch::randn({4, 6}).t()},                   // [6,4], not contiguous
  };
  WriteSafetensors(path, tensors, {{"format", "pt"}, {"note", "x"}});

  SafetensorsFile file = SafetensorsFile::Open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a.bf16", "empty", "flags", "ids", "m.f16",
                                                    "scalar", "strided", "z.f32"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "x");
  for (const auto& [name, expected] : tensors) {
    torch::Tensor actual = file.Tensor(name);
    EXPECT_EQ(actual.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(actual.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(torch::equal(actual, expected)) << name;
  }
  EXPECT_EQ(file.Entry("a.bf16").dtype, "BF16");
  // The header is padded so that the data area starts 8-byte aligned.
  const std::string bytes = model_test::ReadFileBytes(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
  EXPECT_THAT(TrainErrorMessage([&] { file.Tensor("nope"); }), HasSubstr("no tensor 'nope'"));
}

// The torch-free header parser (safetensors_header.cc) and the reader (safetensors_reader.cc)
// each hold a dtype table; they must name the same dtypes with the same element sizes.
TEST(SafetensorsTest, HeaderAndReaderDtypeTablesAgree) {
  for (torch::Dtype dtype :
       {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64,
        torch::kInt32, torch::kInt16, torch::kInt8, torch::kUInt8, torch::kBool}) {
    const std::string name = SafetensorsDtypeName(dtype);
    EXPECT_EQ(SafetensorsDtype(name), dtype) << name;
    EXPECT_EQ(SafetensorsDtypeSize(name), c10::elementSize(dtype)) << name;
  }
  EXPECT_EQ(SafetensorsDtypeSize("F8_E4M3"), 0u);
  EXPECT_THAT(TrainErrorMessage([] { SafetensorsDtype("F8_E4M3"); }), HasSubstr("F8_E4M3"));
}

TEST(SafetensorsTest, WriterIsAtomicAndRejectsDuplicates) {
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  const std::string path = dir + "/t.safetensors";
  WriteSafetensors(path, {{"x", torch::ones({2})}});
  EXPECT_THAT(TrainErrorMessage([&] {
                WriteSafetensors(path, {{"x", torch::ones({2})}, {"x", torch::ones({3})}});
              }),
              HasSubstr("duplicate or reserved tensor name 'x'"));
  // The failed write left the earlier file intact and no temp file behind.
  EXPECT_TRUE(torch::equal(SafetensorsFile::Open(path).Tensor("x"), torch::ones({2})));
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());
}

struct HostileCase {
  const char* name;
  std::string image;
  const char* expected_message;
};

std::vector<HostileCase> HostileCases() {
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  return {
      {"shorter_than_length_prefix", std::string("\x05\x00\x00", 3), "too short"},
      {"header_length_larger_than_file", Image("{" + ok_entry + "}", 16, 100000),
       "is larger than the file"},
      {"header_length_over_limit", Image("{}", 0, int64_t{1} << 40), "exceeds the 100 MB limit"},
      {"bad_json", Image(R"({"w":{"dtype":"F32",)", 16), "header is not valid JSON"},
      {"json_not_object", Image("[1,2,3]", 0), "header is not a JSON object"},
      {"truncated_data", Image("{" + ok_entry + "}", 10),
       "tensor 'w': data_offsets end 16 is past the end of the data (10 bytes; file truncated?)"},
      {"offsets_past_end",
       Image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[1000,1008]}})", 16),
       "tensor 'w': data_offsets end 1008 is past the end"},
      {"overlapping_tensors",
       Image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
             16),
       "tensors 'a' and 'b' overlap"},
      {"begin_after_end", Image(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 16),
       "tensor 'w': data_offsets begin 8 > end 4"},
      {"dtype_shape_mismatch",
       Image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16),
       "tensor 'w': dtype F32 and shape [3] need 12 bytes, data_offsets give 8"},
      {"unknown_dtype", Image(R"({"w":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", 16),
       "tensor 'w': unknown or unsupported dtype 'F7'"},
      {"missing_dtype", Image(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 16),
       "tensor 'w': missing dtype"},
      {"missing_shape", Image(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 16),
       "tensor 'w': missing shape"},
      {"missing_offsets", Image(R"({"w":{"dtype":"F32","shape":[2]}})", 16),
       "tensor 'w': missing data_offsets"},
      {"negative_dimension",
       Image(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 16),
       "tensor 'w': shape has a non-integer or negative dimension"},
      {"shape_overflow",
       Image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 16),
       "tensor 'w': shape [4294967296,4294967296] overflows"},
      {"offsets_not_pair", Image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 16),
       "tensor 'w': data_offsets must be a list of two non-negative integers"},
      {"entry_not_object", Image(R"({"w":5})", 16), "tensor 'w': entry is not a JSON object"},
      {"unknown_entry_field",
       Image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 16),
       "tensor 'w': unknown field 'x'"},
      {"metadata_not_strings", Image(R"({"__metadata__":{"k":1}})", 0),
       "__metadata__ 'k' is not a string"},
      {"metadata_not_object", Image(R"({"__metadata__":[]})", 0), "__metadata__ is not an object"},
  };
}

TEST(SafetensorsTest, HostileFilesAreRejectedWithAMessageNamingTheProblem) {
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  for (const HostileCase& c : HostileCases()) {
    SCOPED_TRACE(c.name);
    const std::string path = dir + "/" + c.name + ".safetensors";
    model_test::WriteFileBytes(path, c.image);
    const std::string message = TrainErrorMessage([&] { SafetensorsFile::Open(path); });
    EXPECT_THAT(message, HasSubstr(c.expected_message));
    EXPECT_THAT(message, HasSubstr(path));  // names the file
  }
}

TEST(SafetensorsTest, MissingFileAndDirectoryAreErrors) {
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  EXPECT_THAT(TrainErrorMessage([&] { SafetensorsFile::Open(dir + "/absent.safetensors"); }),
              HasSubstr("cannot open"));
  EXPECT_THAT(TrainErrorMessage([&] { SafetensorsFile::Open(dir); }),
              HasSubstr("not a regular file"));
}

// Seeded mutations of a valid file: bit flips, truncations, random numbers spliced into the
// header's numbers, random header lengths. Each must either parse into a header whose every
// tensor lies inside the buffer, or be a TrainError; never a crash or another exception.
TEST(SafetensorsFuzzTest, MutatedHeadersNeverCrash) {
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  const std::string valid_path = dir + "/valid.safetensors";
  torch::manual_seed(3);
  WriteSafetensors(valid_path,
                   {{"model.a", torch::randn({3, 4})},
                    {"model.b", torch::randn({5}).to(torch::kBFloat16)},
                    {"model.c", torch::arange(6, torch::kInt64).reshape({2, 3})}},
                   {{"format", "pt"}});
  const std::string valid = model_test::ReadFileBytes(valid_path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, valid.data(), 8);

  std::mt19937_64 rng(20251128);
  const std::vector<std::string> numbers = {"0",
                                            "1",
                                            "7",
                                            "8",
                                            "12",
                                            "48",
                                            "4294967295",
                                            "18446744073709551615",
                                            "18446744073709551616",
                                            "-1",
                                            "1e308",
                                            "99999999999999999999999"};
  int accepted = 0, rejected = 0;
  constexpr int kIterations = 4000;
  for (int i = 0; i < kIterations; ++i) {
    std::string image = valid;
    const int kind = static_cast<int>(rng() % 5);
    if (kind == 0) {  // flip 1-4 bits in the length prefix or the header
      for (int flips = 1 + rng() % 4; flips > 0; --flips) {
        const size_t at = rng() % (8 + header_length);
        image[at] = static_cast<char>(image[at] ^ (1 << (rng() % 8)));
      }
    } else if (kind == 1) {  // truncate anywhere
      image.resize(rng() % image.size());
    } else if (kind == 2) {  // replace one number in the header with a random one
      std::vector<size_t> digits;
      for (size_t at = 8; at < 8 + header_length; ++at) {
        if (std::isdigit(static_cast<unsigned char>(image[at])) &&
            !std::isdigit(static_cast<unsigned char>(image[at - 1]))) {
          digits.push_back(at);
        }
      }
      const size_t at = digits[rng() % digits.size()];
      size_t end = at;
      while (end < image.size() && std::isdigit(static_cast<unsigned char>(image[end]))) ++end;
      const std::string replacement =
          rng() % 2 ? numbers[rng() % numbers.size()] : std::to_string(rng() % 100000);
      image.replace(at, end - at, replacement);
      // Keep the declared length in step so the mutation reaches the validator.
      const uint64_t length = header_length + replacement.size() - (end - at);
      for (int b = 0; b < 8; ++b) image[b] = static_cast<char>((length >> (8 * b)) & 0xff);
    } else if (kind == 3) {  // random declared header length
      const uint64_t length = rng() % 2 ? rng() : rng() % (image.size() + 16);
      for (int b = 0; b < 8; ++b) image[b] = static_cast<char>((length >> (8 * b)) & 0xff);
    } else {  // overwrite a header byte with a random byte
      image[8 + rng() % header_length] = static_cast<char>(rng() % 256);
    }
    try {
      const auto* data = reinterpret_cast<const uint8_t*>(image.data());
      SafetensorsHeader header = ParseSafetensorsHeader(data, image.size(), "fuzz");
      for (const SafetensorsEntry& entry : header.entries) {
        ASSERT_LE(entry.begin, entry.end);
        ASSERT_LE(header.data_start + entry.end, image.size()) << "iteration " << i;
      }
      ++accepted;
      if (i % 16 == 0) {  // the mmap path too: open and read every tensor
        const std::string path = dir + "/mutant.safetensors";
        model_test::WriteFileBytes(path, image);
        SafetensorsFile file = SafetensorsFile::Open(path);
        for (const std::string& name : file.names()) file.Tensor(name);
      }
    } catch (const TrainError&) {
      ++rejected;
    } catch (const std::exception& error) {
      FAIL() << "iteration " << i << ": not a TrainError: " << error.what();
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the validator.
  EXPECT_GT(accepted, 50);
  EXPECT_GT(rejected, kIterations / 2);
  std::cerr << "fuzz: " << accepted << " accepted, " << rejected << " rejected\n";
}

}  // namespace
}  // namespace tuneledger::train
