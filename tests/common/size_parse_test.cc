#include "common/size_parse.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace genomed {
namespace {

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t GiB = 1024 * MiB;
constexpr std::uint64_t TiB = 1024 * GiB;

std::uint64_t size_ok(const std::string& text) {
  const auto r = parse_size(text);
  EXPECT_TRUE(r.ok()) << "'" << text << "': " << r.status().to_string();
  return r.ok() ? *r : 0;
}

void expect_refused(const std::string& text) {
  const auto r = parse_size(text);
  EXPECT_FALSE(r.ok()) << "'" << text << "' parsed as " << (r.ok() ? *r : 0);
  EXPECT_EQ(r.code(), Errc::bad_request) << "'" << text << "'";
}

TEST(ParseSize, BinarySuffixesArePowersOf1024) {
  EXPECT_EQ(size_ok("512M"), 512 * MiB);
  EXPECT_EQ(size_ok("8G"), 8 * GiB);
  EXPECT_EQ(size_ok("1k"), KiB);
  EXPECT_EQ(size_ok("1K"), KiB);
  EXPECT_EQ(size_ok("2T"), 2 * TiB);
}

TEST(ParseSize, PlainNumberIsBytes) {
  EXPECT_EQ(size_ok("4096"), 4096u);
  EXPECT_EQ(size_ok("0"), 0u);
  EXPECT_EQ(size_ok("1B"), 1u);
  EXPECT_EQ(size_ok("1b"), 1u);
}

TEST(ParseSize, FractionsScaleBeforeRounding) {
  EXPECT_EQ(size_ok("1.5G"), GiB + GiB / 2);
  EXPECT_EQ(size_ok("0.5K"), 512u);
  EXPECT_EQ(size_ok("2.25M"), 2 * MiB + MiB / 4);
}

TEST(ParseSize, BAndIBSuffixesAreOptionalAndCaseInsensitive) {
  EXPECT_EQ(size_ok("2KiB"), 2 * KiB);
  EXPECT_EQ(size_ok("3MB"), 3 * MiB);
  EXPECT_EQ(size_ok("3mb"), 3 * MiB);
  EXPECT_EQ(size_ok("4gib"), 4 * GiB);
  EXPECT_EQ(size_ok("1TiB"), TiB);
}

TEST(ParseSize, EmptyAndBlankAreRefused) {
  expect_refused("");
  expect_refused(" ");
  expect_refused("\t");
}

TEST(ParseSize, NegativeIsRefused) {
  expect_refused("-1");
  expect_refused("-1G");
  expect_refused("-0.5M");
}

TEST(ParseSize, UnknownOrMalformedSuffixIsRefused) {
  for (const char* text :
       {"1X", "12Q", "1KK", "1 G", "1G ", "1GiBB", "1P", "1E", "G", "lots", "1.2.3M"}) {
    expect_refused(text);
  }
}

// "B" / "iB" may only follow a unit letter (or "B" stand alone): "1iB",
// "1BB" and "1BiB" are not sizes.
TEST(ParseSize, ByteMarkerWithoutAUnitLetterIsRefused) {
  for (const char* text : {"1iB", "1BB", "1BiB", "1ib"}) expect_refused(text);
}

// Only plain decimals: strtod's other spellings (hex, exponents, a sign,
// leading blanks, a bare or trailing point) are not sizes on a command line.
TEST(ParseSize, OnlyDecimalNumbersAreSizes) {
  for (const char* text : {"0x10", "0X10M", "1e3", "1E3", "1e20", "+5M", " 5M", ".5G", "5.G", "5.",
                           "0x1p4", "1,5G"}) {
    expect_refused(text);
  }
  EXPECT_EQ(size_ok("0.5G"), GiB / 2);
  EXPECT_EQ(size_ok("007M"), 7 * MiB);
}

TEST(ParseSize, NonFiniteIsRefused) {
  for (const char* text : {"inf", "infinity", "nan", "1e400"}) expect_refused(text);
}

TEST(ParseSize, ValuesOf2To64OrMoreAreRefusedAsTooLarge) {
  for (const char* text :
       {"16777216T", "20000000T", "18446744073709551616", "99999999999999999999G"}) {
    const auto r = parse_size(text);
    EXPECT_EQ(r.code(), Errc::bad_request) << text;
    EXPECT_NE(r.status().message().find("too large"), std::string::npos)
        << text << ": " << r.status().message();
  }
}

TEST(ParseSize, LargestSizesBelow2To64AreExact) {
  EXPECT_EQ(size_ok("4096T"), 4096 * TiB);        // 2^52
  EXPECT_EQ(size_ok("8388607T"), 8388607 * TiB);  // just under 2^63
}

// Sizes in [2^63, 2^64) pass the "too large" check but used to go through
// std::llround (a signed 64-bit result).
TEST(ParseSize, SizesBetween2To63And2To64AreExactNotWrapped) {
  EXPECT_EQ(size_ok("12000000T"), 12000000 * TiB);
  EXPECT_EQ(size_ok("16777215T"), 16777215 * TiB);
  EXPECT_EQ(size_ok("10000000000000000000"), 10000000000000000000ull);
}

TEST(FormatSize, BytesBelowOneKibibyteArePrintedExactly) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1), "1 B");
  EXPECT_EQ(format_size(1023), "1023 B");
}

TEST(FormatSize, LargerSizesUseTheLargestBinaryUnitWithOneDecimal) {
  EXPECT_EQ(format_size(1024), "1.0 KiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(512 * MiB), "512.0 MiB");
  EXPECT_EQ(format_size(GiB + GiB / 2), "1.5 GiB");
  EXPECT_EQ(format_size(TiB), "1.0 TiB");
}

TEST(FormatSize, TebibytesAreTheLargestUnit) {
  EXPECT_EQ(format_size(1024 * TiB), "1024.0 TiB");
  EXPECT_EQ(format_size(UINT64_MAX), "16777216.0 TiB");
}

TEST(FormatSize, AgreesWithParseSizeOnItsUnits) {
  for (std::uint64_t bytes : {KiB, 3 * MiB, 512 * MiB, 8 * GiB, 2 * TiB}) {
    const std::string text = format_size(bytes);
    std::string compact = text;
    compact.erase(compact.find(' '), 1);  // "512.0MiB"
    EXPECT_EQ(size_ok(compact), bytes) << text;
  }
}

}  // namespace
}  // namespace genomed
