#include "integration/process_helpers.h"

#include <gtest/gtest.h>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"

namespace genomed::testing {

std::string bytes_of(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void expect_file_bytes(const Lease& lease, const std::string& weights) {
  const auto expected = read_file_tensors(weights);
  ASSERT_EQ(lease.tensors().size(), expected.size());
  for (const auto& t : lease.tensors())
    EXPECT_EQ(bytes_of(t.data), expected.at(std::string(t.name)).bytes) << t.name;
}

pid_t pid_in(const std::string& marker) {
  const std::string text = read_file(marker);
  if (text.empty() || text.back() != '\n') return -1;
  return static_cast<pid_t>(std::stol(text));
}

}  // namespace genomed::testing
