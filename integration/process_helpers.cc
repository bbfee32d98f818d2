#include "integration/process_helpers.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

int open_arena_writable(pid_t daemon) {
  namespace fs = std::filesystem;
  const std::string proc = "/proc/" + std::to_string(daemon);
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator(proc + "/fd", ec)) {
    std::error_code link_ec;
    if (fs::read_symlink(fd.path(), link_ec).string().rfind("/memfd:genomed-", 0) != 0) continue;
    const std::string info = read_file(proc + "/fdinfo/" + fd.path().filename().string());
    const auto flags = std::stoul(info.substr(info.find("flags:") + 6), nullptr, 8);
    if ((flags & O_ACCMODE) == O_RDWR) return ::open(fd.path().c_str(), O_RDWR | O_CLOEXEC);
  }
  return -1;
}

const std::byte* arena_mapping() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:genomed-") == std::string::npos) continue;
    return reinterpret_cast<const std::byte*>(
        std::stoull(line.substr(0, line.find('-')), nullptr, 16));
  }
  return nullptr;
}

}  // namespace genomed::testing
