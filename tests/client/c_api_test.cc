// The C interface without a daemon: error codes and names, argument checks,
// options, and failures of connect. Linked against libgenomed-client.so, so
// it also proves the library exports what genomed.h declares.
// (integration/c_api_test.cc leases adapters from a real daemon.)
#include "genomed/genomed.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>

#include "genomed/errc.h"

extern "C" int genomed_c_header_check(void);

namespace {

TEST(CApi, TheHeaderCompilesAndWorksFromC) { EXPECT_EQ(genomed_c_header_check(), 0); }

TEST(CApi, EveryCodeHasItsCppNameAndUnknownNumbersAreUnknown) {
  int known = 0;
  for (int code = 0; code <= 1000; ++code) {
    const auto errc = genomed::errc_from_int(static_cast<std::uint64_t>(code));
    if (errc) {
      ++known;
      EXPECT_EQ(genomed_errc_name(code), genomed::errc_name(*errc)) << code;
    } else {
      EXPECT_STREQ(genomed_errc_name(code), "unknown") << code;
    }
  }
  EXPECT_GT(known, 50);
  EXPECT_STREQ(genomed_errc_name(-1), "unknown");
  EXPECT_STREQ(genomed_errc_name(GENOMED_OK), "ok");
}

// The generated genomed_errc.h defines one macro per code of errc.h, named
// for it and holding its number.
TEST(CApi, TheGeneratedMacrosAreExactlyTheCodesOfErrcH) {
  std::ifstream in(GENOMED_GENERATED_ERRC_H);
  ASSERT_TRUE(in) << GENOMED_GENERATED_ERRC_H;
  const std::regex macro(R"(#define GENOMED_(OK|ERRC_([A-Z0-9_]+)) ([0-9]+))");
  int macros = 0;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, macro)) continue;
    ++macros;
    std::string name = m[1] == "OK" ? "ok" : m[2].str();
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto errc = genomed::errc_from_int(std::stoull(m[3]));
    ASSERT_TRUE(errc) << line;
    EXPECT_EQ(genomed::errc_name(*errc), name) << line;
  }
  int codes = 0;
  for (int code = 0; code <= 1000; ++code) codes += genomed::errc_from_int(code).has_value();
  EXPECT_EQ(macros, codes);
}

TEST(CApi, OptionsStartAtTheCppDefaults) {
  genomed_client_options options;
  std::memset(&options, 0x5a, sizeof options);
  genomed_client_options_init(&options);
  EXPECT_EQ(options.client_name, nullptr);
  EXPECT_EQ(options.connect_timeout_ms, 5000);
  EXPECT_EQ(options.request_timeout_ms, 5000);
  EXPECT_EQ(options.load_timeout_ms, 120000);
  EXPECT_STREQ(genomed_version(), GENOMED_EXPECTED_VERSION);
}

TEST(CApi, ConnectWithoutADaemonIsNotConnectedAndLeavesNoHandle) {
  genomed_client* client = reinterpret_cast<genomed_client*>(0x1);
  genomed_error error;
  const std::string path = "/nonexistent-genomed-test/genomed.sock";
  EXPECT_EQ(genomed_connect(path.c_str(), nullptr, &client, &error), GENOMED_ERRC_NOT_CONNECTED);
  EXPECT_EQ(client, nullptr);
  EXPECT_EQ(error.code, GENOMED_ERRC_NOT_CONNECTED);
  EXPECT_NE(std::string(error.message).find(path), std::string::npos) << error.message;
  // The error argument is optional.
  EXPECT_EQ(genomed_connect(path.c_str(), nullptr, &client, nullptr), GENOMED_ERRC_NOT_CONNECTED);
}

TEST(CApi, ALongMessageIsTruncatedAndTerminated) {
  genomed_client* client = nullptr;
  genomed_error error;
  const std::string path = "/" + std::string(4000, 'x');
  EXPECT_NE(genomed_connect(path.c_str(), nullptr, &client, &error), GENOMED_OK);
  EXPECT_EQ(client, nullptr);
  EXPECT_GT(std::strlen(error.message), 0u);
  EXPECT_LT(std::strlen(error.message), sizeof error.message);
}

TEST(CApi, NullArgumentsAndBadTimeoutsAreBadRequests) {
  genomed_client* client = nullptr;
  genomed_lease* lease = nullptr;
  genomed_error error;
  EXPECT_EQ(genomed_connect(nullptr, nullptr, &client, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_STREQ(error.message, "genomed_connect: socket_path is NULL");
  EXPECT_EQ(genomed_connect("/x", nullptr, nullptr, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_EQ(genomed_acquire(nullptr, "a", GENOMED_TIMEOUT_DEFAULT, &lease, &error),
            GENOMED_ERRC_BAD_REQUEST);
  EXPECT_STREQ(error.message, "genomed_acquire: client is NULL");
  EXPECT_EQ(lease, nullptr);
  genomed_lease* leases[2] = {reinterpret_cast<genomed_lease*>(0x1),
                              reinterpret_cast<genomed_lease*>(0x1)};
  const char* names[2] = {"a", "b"};
  EXPECT_EQ(genomed_acquire_batch(nullptr, names, 2, 0, leases, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_EQ(leases[0], nullptr);
  EXPECT_EQ(leases[1], nullptr);

  genomed_client_options options;
  genomed_client_options_init(&options);
  options.connect_timeout_ms = GENOMED_TIMEOUT_DEFAULT;  // keeps the default: fails as not_connected
  EXPECT_EQ(genomed_connect("/nonexistent-genomed-test/s", &options, &client, &error),
            GENOMED_ERRC_NOT_CONNECTED);
  options.connect_timeout_ms = -7;
  EXPECT_EQ(genomed_connect("/x", &options, &client, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_NE(std::string(error.message).find("-7 ms"), std::string::npos) << error.message;

  genomed_tensor tensor;
  EXPECT_EQ(genomed_lease_find_tensor(nullptr, "t", &tensor, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_EQ(genomed_lease_verify(nullptr, &error), GENOMED_ERRC_BAD_REQUEST);
}

// A count that is no batch (0, past GENOMED_MAX_BATCH, SIZE_MAX from a bug)
// is refused before `leases` is written: it used to be filled with count
// NULLs, past the end of the caller's array.
TEST(CApi, ABatchCountOutOfRangeIsABadRequestAndWritesNothing) {
  auto* const canary = reinterpret_cast<genomed_lease*>(std::uintptr_t{0x5a5a});
  const char* names[2] = {"a", "b"};
  for (const size_t count : {size_t{0}, size_t{GENOMED_MAX_BATCH + 1}, SIZE_MAX / 2, SIZE_MAX}) {
    genomed_lease* leases[2] = {canary, canary};
    genomed_error error;
    EXPECT_EQ(genomed_acquire_batch(nullptr, names, count, 0, leases, &error),
              GENOMED_ERRC_BAD_REQUEST)
        << count;
    EXPECT_EQ(leases[0], canary) << count;
    EXPECT_EQ(leases[1], canary) << count;
    EXPECT_NE(std::string(error.message).find("GENOMED_MAX_BATCH"), std::string::npos)
        << error.message;
  }
  // A count in range: all or nothing, every entry NULL whatever failed.
  genomed_lease* leases[2] = {canary, canary};
  genomed_error error;
  EXPECT_EQ(genomed_acquire_batch(nullptr, names, 2, 0, leases, &error), GENOMED_ERRC_BAD_REQUEST);
  EXPECT_STREQ(error.message, "genomed_acquire_batch: client is NULL");
  EXPECT_EQ(leases[0], nullptr);
  EXPECT_EQ(leases[1], nullptr);
}

TEST(CApi, AccessorsAndDestructorsTakeNull) {
  genomed_lease_release(nullptr);
  genomed_client_close(nullptr);
  EXPECT_EQ(genomed_client_broken(nullptr), 1);
  EXPECT_EQ(genomed_lease_tensor_count(nullptr), 0u);
  EXPECT_EQ(genomed_lease_module_count(nullptr), 0u);
  EXPECT_STREQ(genomed_lease_name(nullptr), "");
  EXPECT_STREQ(genomed_lease_config_json(nullptr), "");
}

}  // namespace
