// Tensor checksums: XXH3-64 as other implementations compute it (the values
// below come from Python's `xxhash` package, which clients use), the same
// over pieces as in one go, and verify_checksums names the first tensor of a
// resident copy whose bytes no longer match.
#include "layout/tensor_checksum.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace genomed::layout {
namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// 256 bytes 0..255, 40 times.
std::string counting() {
  std::string s;
  for (int r = 0; r < 40; ++r)
    for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST(TensorChecksum, IsXxh3SixtyFourAsPythonsXxhashComputesIt) {
  EXPECT_EQ(tensor_checksum({}), 0x2d06800538d394c2ull);
  EXPECT_EQ(tensor_checksum(bytes_of("genomed")), 0xc079fda9249afd05ull);
  EXPECT_EQ(tensor_checksum(bytes_of(counting())), 0xc03d2231ab9348f3ull);
  EXPECT_EQ(checksum_text(0xc079fda9249afd05ull), "0xc079fda9249afd05");
}

TEST(TensorChecksum, AStreamOverPiecesEqualsTheChecksumOfTheWhole) {
  const std::string data = counting();
  ChecksumStream stream;
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{239}, std::size_t{4096}}) {
    stream.reset();
    stream.update(bytes_of(data).first(cut));
    stream.update(bytes_of(data).subspan(cut));
    EXPECT_EQ(stream.digest(), tensor_checksum(bytes_of(data))) << cut;
  }
  stream.reset();
  EXPECT_EQ(stream.digest(), tensor_checksum({}));
}

class VerifyChecksums : public ::testing::Test {
 protected:
  // Three tensors after a 128-byte header, with their true checksums.
  void SetUp() override {
    layout_.header_bytes = 128;
    layout_.total_bytes = 128 + 3 * 64;
    range_.assign(layout_.total_bytes, std::byte{0});
    for (std::size_t i = 0; i < 3; ++i) {
      ResidentTensor t{"t" + std::to_string(i), DType::U8, {40}, 128 + 64 * i, 40};
      for (std::size_t b = 0; b < t.length; ++b) range_[t.offset + b] = std::byte(i * 50 + b);
      t.checksum = tensor_checksum(std::span(range_).subspan(t.offset, t.length));
      layout_.tensors.push_back(t);
    }
  }
  ResidentLayout layout_;
  std::vector<std::byte> range_;
};

TEST_F(VerifyChecksums, AnIntactCopyMatches) {
  EXPECT_TRUE(verify_checksums(layout_, range_).ok());
}

TEST_F(VerifyChecksums, OneFlippedByteIsLayoutInvalidNamingTheFirstTensorThatDiffers) {
  range_[layout_.tensors[1].offset + 17] ^= std::byte{1};
  range_[layout_.tensors[2].offset] ^= std::byte{0x80};
  TensorMismatch bad;
  const Status s = verify_checksums(layout_, range_, &bad);
  EXPECT_EQ(s.code(), Errc::layout_invalid);
  EXPECT_EQ(bad.index, 1u);
  EXPECT_NE(bad.actual, layout_.tensors[1].checksum);
  EXPECT_EQ(bad.actual, tensor_checksum(std::span(range_).subspan(layout_.tensors[1].offset, 40)));
  EXPECT_NE(s.message().find("'t1'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(checksum_text(layout_.tensors[1].checksum)), std::string::npos)
      << s.message();
}

TEST_F(VerifyChecksums, BytesOutsideEveryTensorAreNotCovered) {
  range_[0] = std::byte{0xff};                               // the header
  range_[layout_.tensors[0].offset + 40] = std::byte{0xff};  // alignment padding
  EXPECT_TRUE(verify_checksums(layout_, range_).ok());
}

}  // namespace
}  // namespace genomed::layout
