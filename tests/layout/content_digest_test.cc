// The content digest: XXH3-128 of the manifest as other implementations
// compute it (the value below comes from Python's `xxhash` package), blind
// to where the layout put the bytes, and changed by anything the content
// is: a tensor's bytes (its checksum), dtype, shape, name, or the contract
// (which carries the validated config).
#include "layout/content_digest.h"

#include <gtest/gtest.h>

namespace genomed::layout {
namespace {

ResidentLayout one_tensor() {
  ResidentLayout l;
  l.header_bytes = 128;
  l.total_bytes = 192;
  l.contract = "x";
  l.tensors.push_back(ResidentTensor{"a", DType::U8, {4}, 128, 4, 0x1122});
  return l;
}

ResidentLayout two_tensors() {
  ResidentLayout l = one_tensor();
  l.total_bytes = 256;
  l.tensors.push_back(ResidentTensor{"b", DType::F16, {2, 3}, 192, 12, 0x3344});
  return l;
}

TEST(ContentDigest, IsXxh3OneTwentyEightOfTheManifestAsPythonsXxhashComputesIt) {
  // struct.pack: b"GNMDDIG1" <I 1 b"x" <I 1 <H 1 b"a" 1 1 <QQQ 4 4 0x1122
  EXPECT_EQ(content_digest(one_tensor()).hex(), "0a65c6063d7cd4b44a5b4dddefa12810");
}

TEST(ContentDigest, WhereTheLayoutPutsTheBytesDoesNotCount) {
  ResidentLayout moved = two_tensors();
  moved.header_bytes = 4096;
  moved.total_bytes = 8192;
  moved.tensors[0].offset = 4096;
  moved.tensors[1].offset = 4160;
  moved.lora_r = 99;  // the header's copy of the config's r: the contract is what counts
  EXPECT_EQ(content_digest(moved), content_digest(two_tensors()));
}

TEST(ContentDigest, EveryPartOfTheContentChangesIt) {
  const ContentDigest base = content_digest(two_tensors());
  const auto differs = [&](auto change) {
    ResidentLayout l = two_tensors();
    change(l);
    return content_digest(l) != base;
  };
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.tensors[1].checksum ^= 1; }));  // a byte
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.tensors[1].dtype = DType::BF16; }));
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.tensors[1].shape = {3, 2}; }));
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.tensors[1].shape = {6}; }));
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.tensors[1].name = "c"; }));
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.contract = "y"; }));
  EXPECT_TRUE(differs([](ResidentLayout& l) { l.tensors.pop_back(); }));
  // A name's bytes cannot slide into the next field unnoticed.
  EXPECT_TRUE(differs([](ResidentLayout& l) {
    l.contract = "xa";
    l.tensors[0].name = "";
  }));
}

}  // namespace
}  // namespace genomed::layout
