#include "common/safe_text.h"

#include <cstdint>

namespace genomed {
namespace {

// The length of the well-formed UTF-8 sequence starting at bytes[i] (Unicode
// 15, table 3-7), or 0 if none starts there.
std::size_t sequence_length(std::string_view bytes, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[i + k]); };
  const std::size_t left = bytes.size() - i;
  const unsigned char b0 = at(0);
  if (b0 < 0x80) return 1;
  const auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < left && at(k) >= lo && at(k) <= hi;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;  // no surrogates
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;  // no overlong forms
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;  // nothing past U+10FFFF
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

std::uint32_t code_point(std::string_view seq) {
  const auto b = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(seq[k]));
  };
  switch (seq.size()) {
    case 1:
      return b(0);
    case 2:
      return (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    case 3:
      return (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    default:
      return (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
  }
}

// Characters a terminal or log viewer acts on instead of showing them.
bool harmful(std::uint32_t c, bool quotes_too) {
  if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F)) return true;             // C0, DEL, C1
  if (c == 0x2028 || c == 0x2029) return true;                                    // line breaks
  if ((c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069)) return true;  // bidi
  return quotes_too && (c == '\\' || c == '\'' || c == '"');
}

void append_hex(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0x0F];
  }
}

// Appends the escaped form of at most `max` bytes of `text` (whole
// characters only); returns how many bytes of `text` it showed.
std::size_t escape_into(std::string& out, std::string_view text, std::size_t max, bool quotes_too) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t n = sequence_length(text, i);
    const std::size_t take = n == 0 ? 1 : n;
    if (i + take > max) break;
    const std::string_view piece = text.substr(i, take);
    if (n == 0 || harmful(code_point(piece), quotes_too))
      append_hex(out, piece);
    else
      out += piece;
    i += take;
  }
  return i;
}

void mark_cut(std::string& out, std::size_t shown, std::size_t total) {
  if (shown == total) return;
  out += "... (" + std::to_string(total) + " bytes, " + std::to_string(shown) + " shown)";
}

}  // namespace

std::string quote(std::string_view untrusted, std::size_t max) {
  std::string out = "'";
  const std::size_t shown = escape_into(out, untrusted, max, /*quotes_too=*/true);
  out += '\'';
  mark_cut(out, shown, untrusted.size());
  return out;
}

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  const std::size_t shown = escape_into(out, text, max, /*quotes_too=*/false);
  mark_cut(out, shown, text.size());
  return out;
}

bool is_utf8(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = sequence_length(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace genomed
