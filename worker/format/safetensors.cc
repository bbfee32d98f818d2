// Validation of untrusted safetensors headers. Every rejection has its own
// Errc and names the file, so an operator can tell what is wrong with which
// adapter without a hex editor.
#include "worker/format/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "worker/format/pread_full.h"

namespace genomed::format {
namespace {

using json = nlohmann::json;

// Deeper nesting is never valid (object > tensor > shape list); the limit only
// bounds the work a hostile header can cause.
constexpr int kMaxJsonDepth = 64;

// Tensor names in messages are untrusted and may be long: quote and cut them.
std::string quote_name(std::string_view s) {
  constexpr std::size_t kMax = 120;
  std::string out = "'";
  out += s.substr(0, kMax);
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

// Returns the offset of the first byte that is not part of well-formed UTF-8
// (no overlongs, no surrogates, nothing above U+10FFFF), or npos.
std::size_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Duplicate keys, which nlohmann would silently collapse to the last one.
struct DuplicateKeys {
  std::string top;     // first duplicated top-level key (a tensor name or __metadata__)
  std::string nested;  // first duplicated key inside a top-level value: "owner.key"
};

struct DepthExceeded {};

Result<json> parse_json(std::string_view text, DuplicateKeys& dups, const std::string& label) {
  std::set<std::string> top_keys;
  std::set<std::string> nested_keys;  // keys of the current depth-1 object
  std::string current_top;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      if (depth >= kMaxJsonDepth) throw DepthExceeded{};
      if (depth == 1) nested_keys.clear();
    } else if (event == json::parse_event_t::key) {
      const auto* key = parsed.get_ptr<const std::string*>();
      if (key == nullptr) return true;
      if (depth == 1) {
        current_top = *key;
        if (!top_keys.insert(*key).second && dups.top.empty()) dups.top = *key;
      } else if (depth == 2) {
        if (!nested_keys.insert(*key).second && dups.nested.empty()) {
          dups.nested = current_top;
          dups.nested += '\0';
          dups.nested += *key;
        }
      }
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const DepthExceeded&) {
    return Result<json>(Errc::st_header_invalid_json,
                        label + ": safetensors header JSON nests deeper than " +
                            std::to_string(kMaxJsonDepth) + " levels");
  } catch (const json::exception& e) {
    return Result<json>(Errc::st_header_invalid_json,
                        label + ": safetensors header is not valid JSON: " + e.what());
  } catch (const std::bad_alloc&) {
    return Result<json>(Errc::st_header_too_large,
                        label + ": out of memory while parsing the safetensors header");
  }
}

// A JSON number that is a non-negative integer fitting u64.
std::optional<std::uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (i >= 0) return static_cast<std::uint64_t>(i);
  }
  return std::nullopt;
}

std::string describe_number(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0) {
    return "negative value " + v.dump();
  }
  if (v.is_number_float()) return "non-integer value " + v.dump();
  return "non-integer " + std::string(v.type_name());
}

Status parse_metadata(const json& v, SafetensorsHeader& out, const std::string& label) {
  if (!v.is_object()) {
    return Status(Errc::st_metadata_invalid,
                  label + ": __metadata__ must be an object, found " + v.type_name());
  }
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      return Status(Errc::st_metadata_invalid, label + ": __metadata__ value for key " +
                                                   quote_name(key) + " must be a string, found " +
                                                   value.type_name());
    }
    out.metadata.emplace(key, value.get<std::string>());
  }
  return Status::Ok();
}

Result<TensorInfo> parse_tensor(const std::string& name, const json& v, std::uint64_t data_size,
                                const std::string& label) {
  const std::string where = label + ": tensor " + quote_name(name);
  if (!v.is_object()) {
    return Result<TensorInfo>(Errc::st_tensor_entry_invalid,
                              where + ": entry must be an object, found " + v.type_name());
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) {
      return Result<TensorInfo>(Errc::st_tensor_entry_invalid,
                                where + ": entry lacks the key '" + key + "'");
    }
  }
  if (v.size() != 3) {
    for (const auto& [key, _] : v.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") {
        return Result<TensorInfo>(Errc::st_tensor_entry_invalid,
                                  where + ": entry has the unknown key " + quote_name(key));
      }
    }
  }
  TensorInfo t;
  t.name = name;

  const json& dtype = v["dtype"];
  if (!dtype.is_string()) {
    return Result<TensorInfo>(Errc::st_dtype_unknown,
                              where + ": dtype must be a string, found " + dtype.type_name());
  }
  const auto dt = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!dt) {
    return Result<TensorInfo>(Errc::st_dtype_unknown,
                              where + ": unknown dtype " + quote_name(dtype.get<std::string>()));
  }
  t.dtype = *dt;

  const json& shape = v["shape"];
  if (!shape.is_array()) {
    return Result<TensorInfo>(Errc::st_shape_invalid,
                              where + ": shape must be a list, found " + shape.type_name());
  }
  // Clients index tensors with int64 (numpy, torch): every dim, and the byte
  // size the non-zero dims span, must fit one, even when a zero dim makes the
  // tensor empty ([2^63, 0] would be unusable in every client).
  constexpr std::uint64_t kMaxExtent = std::numeric_limits<std::int64_t>::max();
  std::uint64_t extent = dtype_size(t.dtype);  // bytes spanned by the non-zero dims
  bool empty = false;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const auto dim = as_u64(shape[d]);
    if (!dim) {
      return Result<TensorInfo>(Errc::st_shape_invalid, where + ": shape[" + std::to_string(d) +
                                                            "] is a " + describe_number(shape[d]));
    }
    if (*dim > kMaxExtent || (*dim != 0 && extent > kMaxExtent / *dim)) {
      return Result<TensorInfo>(Errc::st_shape_invalid,
                                where + ": shape " + shape.dump().substr(0, 200) +
                                    " exceeds 2^63-1 bytes (clients index with int64)");
    }
    if (*dim == 0) empty = true;
    if (*dim != 0) extent *= *dim;
    t.shape.push_back(*dim);
  }
  const std::uint64_t bytes = empty ? 0 : extent;

  const json& offs = v["data_offsets"];
  if (!offs.is_array() || offs.size() != 2) {
    return Result<TensorInfo>(Errc::st_offsets_invalid,
                              where + ": data_offsets must be a list [begin, end], found " +
                                  (offs.is_array() ? "a list of " + std::to_string(offs.size())
                                                   : std::string(offs.type_name())));
  }
  const auto begin = as_u64(offs[0]);
  const auto end = as_u64(offs[1]);
  if (!begin || !end) {
    return Result<TensorInfo>(Errc::st_offsets_invalid, where + ": data_offsets " + offs.dump() +
                                                            " must hold two non-negative integers");
  }
  if (*begin > *end) {
    return Result<TensorInfo>(Errc::st_offsets_invalid,
                              where + ": data_offsets " + offs.dump() + " has begin > end");
  }
  if (*end > data_size) {
    return Result<TensorInfo>(Errc::st_offsets_out_of_bounds,
                              where + ": data_offsets " + offs.dump() +
                                  " end past the data section of " + std::to_string(data_size) +
                                  " bytes");
  }
  t.data_begin = *begin;
  t.data_end = *end;
  if (t.byte_size() != bytes) {
    return Result<TensorInfo>(Errc::st_size_mismatch,
                              where + ": data_offsets span " + std::to_string(t.byte_size()) +
                                  " bytes but shape " + shape.dump() + " of " +
                                  std::string(dtype_name(t.dtype)) + " needs " +
                                  std::to_string(bytes));
  }
  return t;
}

// The data section must be tiled exactly: tensors in offset order, each
// starting where the previous ended, the last ending at the end of the file.
Status check_tiling(std::vector<TensorInfo>& tensors, std::uint64_t data_size,
                    const std::string& label) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
  });
  std::uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.data_begin < cursor) {
      return Status(Errc::st_tensors_overlap,
                    label + ": tensors " + quote_name(prev->name) + " and " + quote_name(t.name) +
                        " overlap at data offset " + std::to_string(t.data_begin));
    }
    if (t.data_begin > cursor) {
      return Status(Errc::st_data_gap, label + ": data bytes [" + std::to_string(cursor) + ", " +
                                           std::to_string(t.data_begin) +
                                           ") belong to no tensor (before tensor " +
                                           quote_name(t.name) + ")");
    }
    cursor = t.data_end;
    prev = &t;
  }
  if (cursor != data_size) {
    return Status(Errc::st_trailing_bytes,
                  label + ": " + std::to_string(data_size - cursor) +
                      " trailing bytes follow the last tensor (data section is " +
                      std::to_string(data_size) + " bytes, tensors end at " +
                      std::to_string(cursor) + ")");
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return Status::Ok();
}

}  // namespace

Result<SafetensorsHeader> parse_safetensors_header(std::string_view header_json,
                                                   std::uint64_t header_len,
                                                   std::uint64_t file_size,
                                                   const std::string& label) {
  using R = Result<SafetensorsHeader>;
  if (file_size < 8) {
    return R(Errc::st_file_too_short, label + ": file is " + std::to_string(file_size) +
                                          " bytes, shorter than the 8-byte header length");
  }
  if (header_len > kMaxHeaderBytes) {
    return R(Errc::st_header_too_large, label + ": header length " + std::to_string(header_len) +
                                            " exceeds the limit of " +
                                            std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_len > file_size - 8) {
    return R(Errc::st_file_too_short, label + ": header length " + std::to_string(header_len) +
                                          " runs past the end of the " + std::to_string(file_size) +
                                          "-byte file");
  }
  if (header_json.size() != header_len) {
    return R(Errc::st_file_too_short, label + ": only " + std::to_string(header_json.size()) +
                                          " of the " + std::to_string(header_len) +
                                          " header bytes were read");
  }
  SafetensorsHeader out;
  out.header_len = header_len;
  out.data_offset = 8 + header_len;
  out.data_size = file_size - out.data_offset;

  if (const auto bad = first_invalid_utf8(header_json); bad != std::string_view::npos) {
    return R(Errc::st_header_invalid_json,
             label + ": header is not valid UTF-8 (bad byte at header offset " +
                 std::to_string(bad) + ")");
  }
  DuplicateKeys dups;
  auto parsed = parse_json(header_json, dups, label);
  if (!parsed) return parsed.status();
  const json& root = *parsed;
  if (!root.is_object()) {
    return R(Errc::st_header_not_object,
             label + ": header JSON must be an object, found " + root.type_name());
  }
  if (!dups.top.empty()) {
    return R(Errc::st_duplicate_tensor,
             label + ": the header names " + quote_name(dups.top) + " more than once");
  }
  if (!dups.nested.empty()) {
    const auto sep = dups.nested.find('\0');
    const std::string owner = dups.nested.substr(0, sep);
    const std::string key = dups.nested.substr(sep + 1);
    if (owner == "__metadata__") {
      return R(Errc::st_metadata_invalid,
               label + ": __metadata__ has the key " + quote_name(key) + " more than once");
    }
    return R(Errc::st_tensor_entry_invalid, label + ": tensor " + quote_name(owner) +
                                                ": entry has the key " + quote_name(key) +
                                                " more than once");
  }

  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (Status s = parse_metadata(value, out, label); !s.ok()) return s;
      continue;
    }
    auto t = parse_tensor(name, value, out.data_size, label);
    if (!t) return t.status();
    out.tensors.push_back(std::move(*t));
  }
  if (Status s = check_tiling(out.tensors, out.data_size, label); !s.ok()) return s;
  return out;
}

Result<SafetensorsHeader> read_safetensors_header(int fd, const std::string& label) {
  using R = Result<SafetensorsHeader>;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return R(Errc::file_unreadable,
             label + ": fstat failed: " + std::generic_category().message(errno));
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (file_size < 8) return parse_safetensors_header({}, 0, file_size, label);

  std::array<unsigned char, 8> prefix{};
  const long long got = pread_full(fd, prefix.data(), prefix.size(), 0);
  if (got < 0) {
    return R(Errc::file_unreadable,
             label + ": read failed: " + std::generic_category().message(errno));
  }
  if (got != 8) {
    return R(Errc::file_unreadable, label + ": file ended after " + std::to_string(got) +
                                        " bytes while reading the length prefix (did it shrink?)");
  }
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | prefix[static_cast<std::size_t>(i)];
  // Check the limits before allocating: the length is untrusted.
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8) {
    return parse_safetensors_header({}, header_len, file_size, label);
  }
  std::string text(header_len, '\0');
  const long long n = pread_full(fd, text.data(), text.size(), 8);
  if (n < 0) {
    return R(Errc::file_unreadable,
             label + ": read failed: " + std::generic_category().message(errno));
  }
  if (static_cast<std::uint64_t>(n) != header_len) {
    return R(Errc::file_unreadable, label + ": file ended after " + std::to_string(8 + n) +
                                        " bytes while reading the header (did it shrink?)");
  }
  return parse_safetensors_header(text, header_len, file_size, label);
}

}  // namespace genomed::format
