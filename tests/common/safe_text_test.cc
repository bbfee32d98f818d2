// Untrusted text is shown escaped, cut and always as well-formed UTF-8 on
// one line.
#include "common/safe_text.h"

#include <gtest/gtest.h>

#include <string>

namespace genomed {
namespace {

using namespace std::string_literals;

TEST(Quoted, ControlCharactersAndQuotesAreEscaped) {
  EXPECT_EQ(quote("plain/name-1.0"), "'plain/name-1.0'");
  EXPECT_EQ(quote("a\nb"), "'a\\x0ab'");
  EXPECT_EQ(quote("a\r\x1b[31mred"), "'a\\x0d\\x1b[31mred'");
  EXPECT_EQ(quote("it's \"x\" \\"), "'it\\x27s \\x22x\\x22 \\x5c'");
  EXPECT_EQ(quote("nul\0byte"s), "'nul\\x00byte'");
  EXPECT_EQ(quote("del\x7f"), "'del\\x7f'");
}

TEST(Quoted, BytesThatAreNotUtf8AreEscapedAndUtf8IsKept) {
  EXPECT_EQ(quote("caf\xc3\xa9"), "'caf\xc3\xa9'");                // é stays
  EXPECT_EQ(quote("\xe2\x9c\x93"), "'\xe2\x9c\x93'");              // ✓ stays
  EXPECT_EQ(quote("bad\xff"), "'bad\\xff'");                       // never UTF-8
  EXPECT_EQ(quote("\xc0\xaf"), "'\\xc0\\xaf'");                    // overlong '/'
  EXPECT_EQ(quote("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");           // a surrogate
  EXPECT_EQ(quote("cut\xe2\x9c"), "'cut\\xe2\\x9c'");              // sequence cut short
  EXPECT_EQ(quote("\xf4\x90\x80\x80"), "'\\xf4\\x90\\x80\\x80'");  // past U+10FFFF
}

TEST(Quoted, C1ControlsLineSeparatorsAndBidiOverridesAreEscaped) {
  EXPECT_EQ(quote("\xc2\x9b"
                  "2J"),
            "'\\xc2\\x9b2J'");  // U+009B: CSI
  EXPECT_EQ(quote("a\xe2\x80\xa8"
                  "b"),
            "'a\\xe2\\x80\\xa8b'");  // U+2028
  EXPECT_EQ(quote("\xe2\x80\xae"
                  "txt"),
            "'\\xe2\\x80\\xaetxt'");                      // U+202E
  EXPECT_EQ(quote("\xe2\x81\xa6"), "'\\xe2\\x81\\xa6'");  // U+2066
}

TEST(Quoted, LongValuesAreCutOnACharacterBoundaryWithTheirLength) {
  const std::string big(65536, 'x');
  EXPECT_EQ(quote(big), "'" + std::string(200, 'x') + "'... (65536 bytes, 200 shown)");
  // 199 ASCII bytes, then a 2-byte character that would cross the limit.
  const std::string straddle = std::string(199, 'y') + "\xc3\xa9" + "z";
  EXPECT_EQ(quote(straddle), "'" + std::string(199, 'y') + "'... (202 bytes, 199 shown)");
  EXPECT_EQ(quote(std::string(200, 'w')), "'" + std::string(200, 'w') + "'");
}

TEST(Printable, KeepsTheMessagesOwnQuotesAndEscapesTheRest) {
  EXPECT_EQ(printable("adapter 'a' failed: \"x\""), "adapter 'a' failed: \"x\"");
  EXPECT_EQ(printable("line\nforged\xff"), "line\\x0aforged\\xff");
  EXPECT_TRUE(is_utf8(printable("\xff\xfe\x80 \xe2\x82")));
  EXPECT_EQ(printable(std::string(5000, 'm')),
            std::string(4096, 'm') + "... (5000 bytes, 4096 shown)");
}

TEST(IsUtf8, AcceptsWellFormedTextOnly) {
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("ascii \n with controls\0"s));
  EXPECT_TRUE(is_utf8("\xf0\x9f\x98\x80 \xe4\xb8\xad"));
  EXPECT_FALSE(is_utf8("\x80"));
  EXPECT_FALSE(is_utf8("\xe0\x80\xaf"));  // overlong
  EXPECT_FALSE(is_utf8("\xed\xbf\xbf"));  // surrogate
  EXPECT_FALSE(is_utf8("\xf0\x9f\x98"));  // cut short
  EXPECT_FALSE(is_utf8("\xf8\x88\x80\x80\x80"));
}

}  // namespace
}  // namespace genomed
