// The resident header: plan -> write -> read gives the same layout, tensors
// are aligned and disjoint, and a corrupt header (including random damage) is
// rejected with layout_invalid instead of letting a reader leave its range.
#include "layout/resident_layout.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "worker/format/adapter_contract.h"
#include "worker/format/layout_plan.h"

namespace genomed::format {
namespace {

SafetensorsHeader sample_header() {
  SafetensorsHeader st;
  std::uint64_t cursor = 0;
  auto add = [&](std::string name, layout::DType t, std::vector<std::uint64_t> shape) {
    std::uint64_t bytes = layout::dtype_size(t);
    for (auto d : shape) bytes *= d;
    st.tensors.push_back({std::move(name), t, std::move(shape), cursor, cursor + bytes});
    cursor += bytes;
  };
  // Sorted by name, odd sizes so that padding is needed between tensors.
  add("a.lora_A.weight", layout::DType::F16, {3, 5});
  add("a.lora_B.weight", layout::DType::BF16, {5, 3});
  add("b.empty", layout::DType::F32, {0, 9});
  add("c.scalar", layout::DType::F64, {});
  add("d.bool", layout::DType::BOOL, {7});
  add("e.deep", layout::DType::U8, std::vector<std::uint64_t>(layout::kMaxDims, 1));
  st.data_size = cursor;
  return st;
}

layout::AdapterContract sample_contract() {
  AdapterConfig c;
  c.peft_type = "LORA";
  c.r = 3;
  c.lora_alpha = 16.5;
  c.target_modules = {"a"};
  c.json = R"({"peft_type":"LORA","r":3,"lora_alpha":16.5,"target_modules":["a"]})";
  auto contract = build_contract(c, sample_header().tensors, "sample.safetensors");
  EXPECT_TRUE(contract.ok()) << contract.status().message();
  return *contract;
}

layout::ResidentLayout planned() {
  auto l = plan_layout(sample_header(), sample_contract());
  EXPECT_TRUE(l.ok()) << l.status().message();
  return *l;
}

std::vector<std::byte> written(const layout::ResidentLayout& l) {
  std::vector<std::byte> buf(l.total_bytes, std::byte{0xAB});
  layout::write_layout_header(l, buf);
  return buf;
}

TEST(ResidentLayout, PlanWriteReadRoundTripsToTheSameLayout) {
  const layout::ResidentLayout l = planned();
  const auto buf = written(l);
  auto back = layout::read_layout_header(buf);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(layout::same_layout(l, *back));
  EXPECT_EQ(back->lora_r, 3u);
  EXPECT_EQ(back->lora_alpha, 16.5);
  ASSERT_EQ(back->tensors.size(), 6u);
  EXPECT_EQ(back->tensors[0].name, "a.lora_A.weight");
  EXPECT_EQ(back->tensors[0].shape, (std::vector<std::uint64_t>{3, 5}));
  EXPECT_EQ(back->tensors[0].length, 30u);
  EXPECT_EQ(back->tensors[4].dtype, layout::DType::BOOL);
}

TEST(ResidentLayout, EveryTensorIsAlignedDisjointAndPastTheHeader) {
  const layout::ResidentLayout l = planned();
  EXPECT_EQ(l.header_bytes % layout::kTensorAlignment, 0u);
  EXPECT_EQ(l.total_bytes % layout::kTensorAlignment, 0u);
  std::uint64_t end = l.header_bytes;
  for (const layout::ResidentTensor& t : l.tensors) {
    EXPECT_EQ(t.offset % layout::kTensorAlignment, 0u) << t.name;
    EXPECT_GE(t.offset, end) << t.name;
    end = t.offset + t.length;
  }
  EXPECT_LE(end, l.total_bytes);
}

TEST(ResidentLayout, HeaderPaddingIsZeroed) {
  const layout::ResidentLayout l = planned();
  const auto buf = written(l);
  // The last bytes before the first tensor are padding the writer must clear.
  EXPECT_EQ(buf[l.header_bytes - 1], std::byte{0});
  EXPECT_EQ(buf[l.header_bytes], std::byte{0xAB});  // and nothing past the header
}

TEST(ResidentLayout, PlanRejectsOverlongNamesAndTooManyDims) {
  SafetensorsHeader st;
  st.tensors.push_back({std::string(layout::kMaxNameBytes + 1, 'n'), layout::DType::U8, {1}, 0, 1});
  EXPECT_EQ(plan_layout(st, sample_contract()).code(), Errc::limit_exceeded);
  st.tensors[0] = {"t", layout::DType::U8, std::vector<std::uint64_t>(layout::kMaxDims + 1, 1), 0, 1};
  EXPECT_EQ(plan_layout(st, sample_contract()).code(), Errc::limit_exceeded);
}

TEST(ResidentLayout, SameLayoutNoticesEveryField) {
  const layout::ResidentLayout l = planned();
  std::vector<layout::ResidentLayout> changed(9, l);
  changed[0].lora_r = 9;
  changed[1].lora_alpha = 16.0;
  changed[2].header_bytes += 64;
  changed[3].total_bytes += 64;
  changed[4].tensors.pop_back();
  changed[5].tensors[1].name += "x";
  changed[6].tensors[1].shape[0] = 4;
  changed[7].tensors[2].offset += 64;
  changed[8].contract += "x";
  for (std::size_t i = 0; i < changed.size(); ++i) {
    EXPECT_FALSE(layout::same_layout(l, changed[i])) << i;
  }
  EXPECT_TRUE(layout::same_layout(l, planned()));
}

// --- corrupt headers ----------------------------------------------------------------

// Byte positions of the first tensor's fields ("a.lora_A.weight", 2 dims).
constexpr std::size_t kFirst = 48;
constexpr std::size_t kDtypeAt = kFirst + 2 + 15;
constexpr std::size_t kOffsetAt = kDtypeAt + 2 + 2 * 8;
constexpr std::size_t kLengthAt = kOffsetAt + 8;

void put_u64(std::vector<std::byte>& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + static_cast<std::size_t>(i)] = std::byte(v >> (8 * i));
}

void expect_invalid(const std::vector<std::byte>& b, const std::string& needle,
                    std::size_t size = ~std::size_t{0}) {
  auto r = layout::read_layout_header(std::span(b).first(std::min(size, b.size())));
  ASSERT_FALSE(r.ok()) << needle;
  EXPECT_EQ(r.code(), Errc::layout_invalid);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(ResidentLayoutCorrupt, FieldPositionsUsedBelowAreRight) {
  const auto buf = written(planned());
  std::uint64_t offset = 0;
  for (int i = 7; i >= 0; --i)
    offset = (offset << 8) |
             std::to_integer<std::uint64_t>(buf[kOffsetAt + static_cast<std::size_t>(i)]);
  EXPECT_EQ(offset, planned().tensors[0].offset);
  EXPECT_EQ(buf[kDtypeAt], std::byte(layout::DType::F16));
}

TEST(ResidentLayoutCorrupt, BadMagicIsRejected) {
  auto buf = written(planned());
  buf[3] = std::byte{'X'};
  expect_invalid(buf, "magic");
}

TEST(ResidentLayoutCorrupt, BadVersionIsRejected) {
  auto buf = written(planned());
  buf[8] = std::byte{1};  // version 1 had no contract
  expect_invalid(buf, "version 1");
  buf[8] = std::byte{2};  // version 2 had no checksums
  expect_invalid(buf, "version 2");
}

TEST(ResidentLayout, ChecksumsRoundTripThroughTheHeaderAndSameLayoutIgnoresThem) {
  layout::ResidentLayout l = planned();
  for (std::size_t i = 0; i < l.tensors.size(); ++i) {
    l.tensors[i].checksum = 0x9e3779b97f4a7c15ull * (i + 1);
  }
  const auto buf = written(l);
  auto back = layout::read_layout_header(buf);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  for (std::size_t i = 0; i < l.tensors.size(); ++i) {
    EXPECT_EQ(back->tensors[i].checksum, l.tensors[i].checksum) << i;
  }
  // A probe's plan (no checksums) is the same layout as the filled one.
  EXPECT_TRUE(layout::same_layout(*back, planned()));
}

TEST(ResidentLayoutCorrupt, TruncatedSpanIsRejected) {
  const layout::ResidentLayout l = planned();
  const auto buf = written(l);
  expect_invalid(buf, "do not fit", l.total_bytes - 1);
  expect_invalid(buf, "do not fit", l.header_bytes - 1);
  expect_invalid(buf, "fixed header", 20);
  expect_invalid(buf, "magic", 3);
}

TEST(ResidentLayoutCorrupt, OffsetsOutsideTheSpanAreRejected) {
  const layout::ResidentLayout l = planned();
  auto buf = written(l);
  put_u64(buf, kOffsetAt, l.total_bytes);  // starts at the end, 30 bytes long
  expect_invalid(buf, "tensor #0");
  put_u64(buf, kOffsetAt, ~std::uint64_t{0} - 63);  // offset + length wraps around
  expect_invalid(buf, "tensor #0");
  put_u64(buf, kOffsetAt, 0);  // inside the header
  expect_invalid(buf, "tensor #0");
  put_u64(buf, kOffsetAt, l.tensors[0].offset + 1);
  expect_invalid(buf, "aligned");
}

TEST(ResidentLayoutCorrupt, LengthOtherThanShapeTimesDtypeIsRejected) {
  auto buf = written(planned());
  put_u64(buf, kLengthAt, 31);
  expect_invalid(buf, "differs from shape");
  buf = written(planned());
  buf[kDtypeAt] = std::byte(layout::DType::F32);
  expect_invalid(buf, "differs from shape");
  buf[kDtypeAt] = std::byte{200};
  expect_invalid(buf, "unknown dtype");
}

TEST(ResidentLayout, ContractRoundTripsThroughTheHeader) {
  const layout::ResidentLayout l = planned();
  const auto buf = written(l);
  layout::AdapterContract contract;
  ASSERT_TRUE(layout::read_layout_header(buf, &contract).ok());
  ASSERT_EQ(contract.modules.size(), 1u);
  EXPECT_EQ(contract.modules[0].path, "a");
  EXPECT_EQ(contract.modules[0].a, "a.lora_A.weight");
  EXPECT_EQ(contract.modules[0].rank, 3u);
  EXPECT_EQ(contract.modules[0].scaling, 16.5 / 3);
  EXPECT_EQ(contract.other_tensors,
            (std::vector<std::string>{"b.empty", "c.scalar", "d.bool", "e.deep"}));
  EXPECT_EQ(contract.config.json, sample_contract().config.json);
}

TEST(ResidentLayoutCorrupt, ContractNamingATensorOutsideTheTableIsRejected) {
  layout::AdapterContract contract = sample_contract();
  contract.other_tensors.push_back("not.in.the.table");
  auto l = plan_layout(sample_header(), contract);
  ASSERT_TRUE(l.ok());
  expect_invalid(written(*l), "not in the table");
}

TEST(ResidentLayoutCorrupt, UndecodableContractIsRejected) {
  const layout::ResidentLayout l = planned();
  auto buf = written(l);
  // The contract starts right after the tensor table.
  const std::size_t contract_at = l.header_bytes - (l.header_bytes - 48) + [&] {
    std::size_t table = 0;
    for (const auto& t : l.tensors) table += layout::table_entry_bytes(t);
    return table;
  }();
  ASSERT_EQ(std::to_integer<unsigned>(buf[contract_at]) & 0xF0, 0xD0u) << "a map16/map32 header";
  buf[contract_at] = std::byte{0xC1};  // a byte msgpack never uses
  expect_invalid(buf, "adapter contract");
}

TEST(ResidentLayoutCorrupt, HugeTensorCountIsRejectedBeforeAllocating) {
  auto buf = written(planned());
  buf[12] = buf[13] = buf[14] = buf[15] = std::byte{0xFF};
  expect_invalid(buf, "tensor_count");
}

TEST(ResidentLayoutCorrupt, RandomDamageNeverEscapesTheSpan) {
  const layout::ResidentLayout l = planned();
  const auto good = written(l);
  std::mt19937_64 rng(12345);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    auto buf = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Most damage goes into the header, where it matters.
      const std::size_t at = rng() % l.header_bytes;
      buf[at] ^= std::byte(1u << (rng() % 8));
    }
    std::size_t size = buf.size();
    if (rng() % 4 == 0) size = rng() % (buf.size() + 1);
    const std::span<const std::byte> src = std::span(buf).first(size);
    auto r = layout::read_layout_header(src);
    if (!r.ok()) {
      ASSERT_EQ(r.code(), Errc::layout_invalid);
      continue;
    }
    ++accepted;
    // Whatever a damaged header still describes lies inside the span.
    ASSERT_LE(r->total_bytes, size);
    for (const layout::ResidentTensor& t : r->tensors) {
      ASSERT_EQ(t.offset % layout::kTensorAlignment, 0u);
      ASSERT_GE(t.offset, r->header_bytes);
      ASSERT_LE(t.offset + t.length, r->total_bytes);
    }
  }
  // Flips of padding, names or alpha keep a header valid: the loop saw both outcomes.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace genomed::format
