// Text a client or an adapter file controls, made safe to write into a log
// line or an error message, and so into a msgpack str: the one place that
// decides how such bytes are shown. A client that could put a newline or an
// escape sequence into the daemon's log would forge log lines or rewrite the
// operator's terminal; one that could put bytes that are not UTF-8 into a
// reply would make strict msgpack decoders refuse it; one that could make
// the daemon log 64 KiB per request would fill its disk.
//
// Every byte that could do harm is written as \xNN (two hex digits): C0
// control characters and DEL, C1 controls (U+0080..U+009F), the Unicode line
// and paragraph separators and the bidirectional overrides and isolates
// (U+2028, U+2029, U+202A..U+202E, U+2066..U+2069), and every byte that is
// not part of well-formed UTF-8. Other UTF-8 is kept as it is. Long text is
// cut on a character boundary and marked with its full length.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace genomed {

// Bytes of one untrusted value shown at most (quote()).
inline constexpr std::size_t kMaxQuotedBytes = 200;
// Bytes of a whole message shown at most (printable()).
inline constexpr std::size_t kMaxMessageBytes = 4096;

// One untrusted value (an adapter name, a HELLO client string, an op name)
// in single quotes, for a log line or a message. Besides the bytes above,
// the backslash and both quote characters are escaped, so the value cannot
// end its quotes early. At most `max` bytes of it are shown:
//   quote("a\nb")         -> 'a\x0ab'
//   quote(65536 x "x")    -> 'xx...x'... (65536 bytes, 200 shown)
std::string quote(std::string_view untrusted, std::size_t max = kMaxQuotedBytes);

// A whole message that may carry untrusted text (a Status message, a
// worker's error quoting a file): the bytes above are escaped, quotes and
// backslashes are kept (they are the message's own), and at most `max`
// bytes are shown, marked as quote() does. The result is well-formed UTF-8
// on one line.
std::string printable(std::string_view text, std::size_t max = kMaxMessageBytes);

// True if `bytes` is well-formed UTF-8: no overlong forms, no surrogates,
// nothing past U+10FFFF, no sequence cut short.
bool is_utf8(std::string_view bytes);

}  // namespace genomed
