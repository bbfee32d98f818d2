#include "integration/process_helpers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"

namespace genomed::testing {

namespace fs = std::filesystem;

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

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    pid_t child;
    while (in >> child) out.push_back(child);
  }
  return out;
}

std::vector<std::string> stat_fields(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream in(stat.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

char process_state(pid_t pid) {
  const auto f = stat_fields(pid);
  return f.empty() ? '?' : f[0][0];
}

int thread_count(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

ProcessRef ref_of(pid_t pid) {
  const auto f = stat_fields(pid);
  return {pid, f.size() > 19 ? f[19] : ""};
}

bool alive(const ProcessRef& p) {
  const auto f = stat_fields(p.pid);
  return f.size() > 19 && f[19] == p.start_time && f[0] != "Z" && f[0] != "X";
}

}  // namespace genomed::testing
