// Encoding and hostile-input-safe decoding of the resident header. The decoder
// is what clients run on shared memory another process wrote, so it bounds
// every read by the span and every count by the bytes that could hold it.
#include "layout/resident_layout.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

namespace genomed::layout {
namespace {

constexpr char kMagic[8] = {'G', 'N', 'M', 'D', 'A', 'D', 'P', '1'};
// name_len, dtype, ndim, offset, length, checksum: the smallest possible
// table entry.
constexpr std::uint64_t kMinEntryBytes = 2 + 1 + 1 + 8 + 8 + 8;

// Appends little-endian fields at a cursor. Callers size dest beforehand.
class Writer {
 public:
  explicit Writer(std::span<std::byte> dest) : dest_(dest) {}
  void bytes(const void* p, std::size_t n) {
    std::memcpy(dest_.data() + pos_, p, n);
    pos_ += n;
  }
  template <class T>
  void le(T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      dest_[pos_++] = static_cast<std::byte>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF);
    }
  }
  std::size_t pos() const { return pos_; }

 private:
  std::span<std::byte> dest_;
  std::size_t pos_ = 0;
};

// Reads little-endian fields; any read past the end sets failed() and yields 0.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> src) : src_(src) {}
  bool take(void* out, std::size_t n) {
    if (failed_ || src_.size() - pos_ < n) {
      failed_ = true;
      return false;
    }
    std::memcpy(out, src_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <class T>
  T le() {
    unsigned char b[sizeof(T)] = {};
    if (!take(b, sizeof(T))) return T{};
    std::uint64_t v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) v = (v << 8) | b[i];
    return static_cast<T>(v);
  }
  bool failed() const { return failed_; }
  std::size_t pos() const { return pos_; }

 private:
  std::span<const std::byte> src_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

Result<ResidentLayout> invalid(const std::string& why) {
  return Result<ResidentLayout>(Errc::layout_invalid, "resident adapter header: " + why);
}

}  // namespace

std::uint64_t table_entry_bytes(const ResidentTensor& t) {
  return 2 + t.name.size() + 1 + 1 + 8 * t.shape.size() + 8 + 8 + 8;
}

void write_layout_header(const ResidentLayout& layout, std::span<std::byte> dest) {
  std::memset(dest.data(), 0, layout.header_bytes);
  Writer w(dest);
  w.bytes(kMagic, sizeof kMagic);
  w.le<std::uint32_t>(kLayoutVersion);
  w.le<std::uint32_t>(static_cast<std::uint32_t>(layout.tensors.size()));
  w.le<std::uint64_t>(layout.header_bytes);
  w.le<std::uint64_t>(layout.total_bytes);
  w.le<std::uint32_t>(layout.lora_r);
  w.le<std::uint64_t>(std::bit_cast<std::uint64_t>(layout.lora_alpha));
  w.le<std::uint32_t>(static_cast<std::uint32_t>(layout.contract.size()));
  for (const ResidentTensor& t : layout.tensors) {
    w.le<std::uint16_t>(static_cast<std::uint16_t>(t.name.size()));
    w.bytes(t.name.data(), t.name.size());
    w.le<std::uint8_t>(static_cast<std::uint8_t>(t.dtype));
    w.le<std::uint8_t>(static_cast<std::uint8_t>(t.shape.size()));
    for (std::uint64_t d : t.shape) w.le<std::uint64_t>(d);
    w.le<std::uint64_t>(t.offset);
    w.le<std::uint64_t>(t.length);
    w.le<std::uint64_t>(t.checksum);
  }
  w.bytes(layout.contract.data(), layout.contract.size());
}

Result<ResidentLayout> read_layout_header(std::span<const std::byte> src,
                                          AdapterContract* contract) {
  Reader r(src);
  char magic[8] = {};
  if (!r.take(magic, sizeof magic)) return invalid("range shorter than the magic");
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) return invalid("bad magic");
  const auto version = r.le<std::uint32_t>();
  const auto count = r.le<std::uint32_t>();
  ResidentLayout layout;
  layout.header_bytes = r.le<std::uint64_t>();
  layout.total_bytes = r.le<std::uint64_t>();
  layout.lora_r = r.le<std::uint32_t>();
  layout.lora_alpha = std::bit_cast<double>(r.le<std::uint64_t>());
  const auto contract_bytes = r.le<std::uint32_t>();
  if (r.failed()) return invalid("range shorter than the fixed header");
  if (version != kLayoutVersion) return invalid("unsupported version " + std::to_string(version));
  if (!std::isfinite(layout.lora_alpha)) return invalid("lora_alpha is not finite");
  if (layout.header_bytes % kTensorAlignment != 0 || layout.header_bytes < kFixedHeaderBytes) {
    return invalid("header_bytes " + std::to_string(layout.header_bytes) +
                   " is not an aligned size past the fixed fields");
  }
  if (layout.total_bytes > src.size() || layout.header_bytes > layout.total_bytes) {
    return invalid("header_bytes " + std::to_string(layout.header_bytes) + " / total_bytes " +
                   std::to_string(layout.total_bytes) + " do not fit the range of " +
                   std::to_string(src.size()) + " bytes");
  }
  // Bound the count by what the table area can hold before reserving anything.
  if (count > (layout.header_bytes - kFixedHeaderBytes) / kMinEntryBytes) {
    return invalid("tensor_count " + std::to_string(count) + " cannot fit in header_bytes");
  }
  Reader table(src.first(layout.header_bytes));
  char skip[kFixedHeaderBytes];
  table.take(skip, sizeof skip);
  layout.tensors.reserve(count);
  std::uint64_t prev_end = layout.header_bytes;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string which = "tensor #" + std::to_string(i);
    ResidentTensor t;
    const auto name_len = table.le<std::uint16_t>();
    if (name_len > kMaxNameBytes) return invalid(which + ": name longer than the limit");
    t.name.resize(name_len);
    table.take(t.name.data(), name_len);
    const auto dtype = dtype_from_int(table.le<std::uint8_t>());
    const auto ndim = table.le<std::uint8_t>();
    if (table.failed()) return invalid(which + ": entry runs past header_bytes");
    if (!dtype) return invalid(which + ": unknown dtype");
    t.dtype = *dtype;
    if (ndim > kMaxDims) return invalid(which + ": too many dimensions");
    std::uint64_t bytes = dtype_size(t.dtype);
    bool overflow = false;
    for (std::uint8_t d = 0; d < ndim; ++d) {
      const auto dim = table.le<std::uint64_t>();
      if (dim != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / dim) overflow = true;
      bytes *= dim;
      t.shape.push_back(dim);
    }
    t.offset = table.le<std::uint64_t>();
    t.length = table.le<std::uint64_t>();
    t.checksum = table.le<std::uint64_t>();
    if (table.failed()) return invalid(which + ": entry runs past header_bytes");
    if (overflow || bytes != t.length) {
      return invalid(which + ": length " + std::to_string(t.length) +
                     " differs from shape x dtype size");
    }
    if (!layout.tensors.empty() && !(layout.tensors.back().name < t.name)) {
      return invalid(which + ": names are not strictly sorted");
    }
    if (t.offset % kTensorAlignment != 0) return invalid(which + ": offset not 64-byte aligned");
    if (t.offset < prev_end || t.offset > layout.total_bytes ||
        t.length > layout.total_bytes - t.offset) {
      return invalid(which + ": bytes [" + std::to_string(t.offset) + ", +" +
                     std::to_string(t.length) + ") overlap the header or another tensor, or " +
                     "leave total_bytes " + std::to_string(layout.total_bytes));
    }
    prev_end = t.offset + t.length;
    layout.tensors.push_back(std::move(t));
  }
  if (contract_bytes > kMaxContractBytes) return invalid("contract_bytes exceeds the limit");
  layout.contract.resize(contract_bytes);
  table.take(layout.contract.data(), contract_bytes);
  if (table.failed()) return invalid("the contract runs past header_bytes");
  auto decoded = decode_contract(layout.contract);
  if (!decoded) return invalid(decoded.status().message());
  const auto has_tensor = [&](const std::string& name) {
    auto it =
        std::lower_bound(layout.tensors.begin(), layout.tensors.end(), name,
                         [](const ResidentTensor& t, const std::string& n) { return t.name < n; });
    return it != layout.tensors.end() && it->name == name;
  };
  const auto missing = [&]() -> std::optional<std::string> {
    for (const ContractModule& m : decoded->modules) {
      for (const std::string* n : {&m.a, &m.b}) {
        if (!has_tensor(*n)) return *n;
      }
      for (const auto* n : {&m.magnitude, &m.lora_bias}) {
        if (*n && !has_tensor(**n)) return **n;
      }
    }
    for (const auto* list :
         {&decoded->bias_tensors, &decoded->saved_module_tensors, &decoded->other_tensors}) {
      for (const std::string& n : *list) {
        if (!has_tensor(n)) return n;
      }
    }
    return std::nullopt;
  }();
  if (missing) {
    return invalid("the contract names tensor '" + missing->substr(0, 200) +
                   "', which is not in the table");
  }
  if (contract != nullptr) *contract = std::move(decoded).value();
  return layout;
}

bool same_layout(const ResidentLayout& a, const ResidentLayout& b) {
  if (a.lora_r != b.lora_r ||
      std::bit_cast<std::uint64_t>(a.lora_alpha) != std::bit_cast<std::uint64_t>(b.lora_alpha) ||
      a.header_bytes != b.header_bytes || a.total_bytes != b.total_bytes ||
      a.tensors.size() != b.tensors.size() || a.contract != b.contract) {
    return false;
  }
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const ResidentTensor& x = a.tensors[i];
    const ResidentTensor& y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.offset != y.offset ||
        x.length != y.length) {
      return false;
    }
  }
  return true;
}

}  // namespace genomed::layout
