#include "integration/process_helpers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"

namespace genomed::testing {

namespace fs = std::filesystem;

std::uint64_t listed_leases(Client& client, const std::string& name) {
  auto list = client.list();
  EXPECT_TRUE(list.ok()) << list.status().to_string();
  if (list.ok())
    for (const auto& a : *list)
      if (a.name == name) return a.leases;
  return 0;
}

int in_child(const std::function<int()>& body) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(body());
  if (child < 0) return -1;
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string bytes_of(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void expect_file_bytes(const Lease& lease, const std::string& weights) {
  const auto expected = read_file_tensors(weights);
  ASSERT_EQ(lease.tensors().size(), expected.size());
  for (const auto& t : lease.tensors())
    EXPECT_EQ(bytes_of(t.data), expected.at(std::string(t.name)).bytes) << t.name;
}

// The name the daemon's arena (a memfd) shows in /proc/PID/maps and as the
// target of its descriptors in /proc/PID/fd: "/memfd:genomed-123 (deleted)"
// (the suffix keeps genomed-123 from matching genomed-1234).
std::string arena_path_of(pid_t genomed) {
  const std::string prefix = "/memfd:genomed-" + std::to_string(genomed) + " (deleted)";
  std::istringstream in(read_file("/proc/" + std::to_string(genomed) + "/maps"));
  for (std::string line; std::getline(in, line);) {
    if (line.find(prefix) != std::string::npos) return prefix;
  }
  return "";
}

// Processes (of this uid: others' /proc entries are unreadable, and cannot
// hold our arena) that map the arena or hold a descriptor of it.
std::vector<pid_t> holders_of(const std::string& arena) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    bool holds = read_file(e.path() / "maps").find(arena) != std::string::npos;
    std::error_code fd_ec;
    for (const auto& fd : fs::directory_iterator(e.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      if (fs::read_symlink(fd.path(), link_ec).string().rfind(arena, 0) == 0) holds = true;
    }
    if (holds) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

pid_t pid_in(const std::string& marker) {
  const std::string text = read_file(marker);
  if (text.empty() || text.back() != '\n') return -1;
  return static_cast<pid_t>(std::stol(text));
}

std::string arena_rw_fd_path(pid_t daemon) {
  const std::string proc = "/proc/" + std::to_string(daemon);
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator(proc + "/fd", ec)) {
    std::error_code link_ec;
    if (fs::read_symlink(fd.path(), link_ec).string().rfind("/memfd:genomed-", 0) != 0) continue;
    const std::string info = read_file(proc + "/fdinfo/" + fd.path().filename().string());
    const auto flags = std::stoul(info.substr(info.find("flags:") + 6), nullptr, 8);
    if ((flags & O_ACCMODE) == O_RDWR) return fd.path();
  }
  return "";
}

int open_arena_writable(pid_t daemon) {
  const std::string path = arena_rw_fd_path(daemon);
  return path.empty() ? -1 : ::open(path.c_str(), O_RDWR | O_CLOEXEC);
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
