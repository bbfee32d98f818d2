// The reference sample files of the safetensors project parse, with the
// dtypes and shapes their generator wrote: our reader agrees with the format's
// own implementation on files we did not write.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <string>

#include "worker/format/safetensors.h"

namespace genomed::format {
namespace {

const std::string kDir = std::string(GENOMED_TESTDATA_DIR) + "/safetensors-samples/";

// The samples are named by numpy type codes: b/B int8/uint8, h/H int16/uint16,
// i/I int32/uint32, e/f/d float16/32/64. Each holds one tensor of shape [6].
const std::map<std::string, layout::DType> kSamples = {
    {"B", layout::DType::U8},  {"b", layout::DType::I8},  {"H", layout::DType::U16}, {"h", layout::DType::I16}, {"I", layout::DType::U32},
    {"i", layout::DType::I32}, {"e", layout::DType::F16}, {"f", layout::DType::F32}, {"d", layout::DType::F64},
};

Result<SafetensorsHeader> read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Result<SafetensorsHeader>(Errc::file_unreadable, "cannot open " + path);
  auto r = read_safetensors_header(fd, path);
  ::close(fd);
  return r;
}

TEST(SafetensorsSamples, EachSingleDtypeSampleParsesWithItsDtypeAndShape) {
  for (const auto& [code, dtype] : kSamples) {
    auto r = read(kDir + code + ".safetensors");
    ASSERT_TRUE(r.ok()) << code << ": " << r.status().message();
    ASSERT_EQ(r->tensors.size(), 1u) << code;
    const TensorInfo& t = r->tensors[0];
    EXPECT_EQ(t.name, code);
    EXPECT_EQ(t.dtype, dtype) << code;
    EXPECT_EQ(t.shape, std::vector<std::uint64_t>{6}) << code;
    EXPECT_EQ(t.byte_size(), 6 * layout::dtype_size(dtype)) << code;
    EXPECT_EQ(r->metadata.at("test"), "a") << code;
  }
}

TEST(SafetensorsSamples, OverallSampleHoldsEveryDtypeContiguously) {
  auto r = read(kDir + "overall.safetensors");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->tensors.size(), kSamples.size());
  std::uint64_t total = 0;
  for (const TensorInfo& t : r->tensors) {
    ASSERT_TRUE(kSamples.count(t.name)) << t.name;
    EXPECT_EQ(t.dtype, kSamples.at(t.name)) << t.name;
    EXPECT_EQ(t.shape, std::vector<std::uint64_t>{6}) << t.name;
    total += t.byte_size();
  }
  EXPECT_EQ(total, r->data_size);
  EXPECT_EQ(r->metadata, (std::map<std::string, std::string>{{"test", "a"}}));
}

}  // namespace
}  // namespace genomed::format
