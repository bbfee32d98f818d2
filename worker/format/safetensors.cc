// Validation of untrusted safetensors headers. Every rejection has its own
// Errc and names the file, so an operator can tell what is wrong with which
// adapter without a hex editor. The JSON is read by header_json.cc (one SAX
// pass, limits checked as it goes); this file checks the length prefix, the
// encoding, and what needs every entry: unique names and the tiling.
#include "worker/format/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <system_error>

#include "worker/format/header_json.h"
#include "worker/format/pread_full.h"

namespace genomed::format {
namespace {

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

// A name twice: nlohmann's DOM would have kept only the last; the format
// allows one. REQUIRES: `tensors` sorted by name.
Status check_unique_names(const std::vector<TensorInfo>& tensors, const std::string& label) {
  const auto twice =
      std::adjacent_find(tensors.begin(), tensors.end(),
                         [](const TensorInfo& a, const TensorInfo& b) { return a.name == b.name; });
  if (twice == tensors.end()) return Status::Ok();
  return Status(Errc::st_duplicate_tensor,
                label + ": the header names " + quoted_name(twice->name) + " more than once");
}

// The data section must be tiled exactly: tensors in offset order, each
// starting where the previous ended, the last ending at the end of the file.
// Walks an index in offset order, so `tensors` keep their name order.
Status check_tiling(const std::vector<TensorInfo>& tensors, std::uint64_t data_size,
                    const std::string& label) {
  std::vector<std::uint32_t> by_offset(tensors.size());  // tensors.size() <= kMaxTensors
  for (std::size_t i = 0; i < by_offset.size(); ++i) by_offset[i] = static_cast<std::uint32_t>(i);
  std::sort(by_offset.begin(), by_offset.end(), [&](std::uint32_t a, std::uint32_t b) {
    const TensorInfo& x = tensors[a];
    const TensorInfo& y = tensors[b];
    return x.data_begin != y.data_begin ? x.data_begin < y.data_begin : x.data_end < y.data_end;
  });
  std::uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const std::uint32_t i : by_offset) {
    const TensorInfo& t = tensors[i];
    if (t.data_begin < cursor) {
      return Status(Errc::st_tensors_overlap,
                    label + ": tensors " + quoted_name(prev->name) + " and " + quoted_name(t.name) +
                        " overlap at data offset " + std::to_string(t.data_begin));
    }
    if (t.data_begin > cursor) {
      return Status(Errc::st_data_gap, label + ": data bytes [" + std::to_string(cursor) + ", " +
                                           std::to_string(t.data_begin) +
                                           ") belong to no tensor (before tensor " +
                                           quoted_name(t.name) + ")");
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
  return Status::Ok();
}

Status header_too_large(std::uint64_t header_len, const std::string& label) {
  return Status(Errc::limit_exceeded,
                label + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
                    std::to_string(kMaxHeaderBytes) + " bytes (kMaxHeaderBytes)");
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
  if (header_len > kMaxHeaderBytes) return header_too_large(header_len, label);
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
  GENOMED_ASSIGN_OR_RETURN(HeaderEntries entries,
                           read_header_json(header_json, out.data_size, label));
  out.tensors = std::move(entries.tensors);
  out.metadata = std::move(entries.metadata);
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  GENOMED_RETURN_IF_ERROR(check_unique_names(out.tensors, label));
  GENOMED_RETURN_IF_ERROR(check_tiling(out.tensors, out.data_size, label));
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
