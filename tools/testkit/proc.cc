#include "tools/testkit/proc.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace genomed::testkit {
namespace {

namespace fs = std::filesystem;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string proc(pid_t pid, const char* entry) {
  return "/proc/" + std::to_string(pid) + "/" + entry;
}

}  // namespace

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(proc(pid, "task"), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::ifstream in(it->path() / "children");
    pid_t child;
    while (in >> child) out.push_back(child);
  }
  return out;
}

std::vector<std::string> stat_fields(pid_t pid) {
  const std::string stat = read_all(proc(pid, "stat"));
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return {};
  std::istringstream in(stat.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

char process_state(pid_t pid) {
  const auto f = stat_fields(pid);
  return f.empty() ? '?' : f[0][0];
}

std::int64_t status_field(pid_t pid, const std::string& field) {
  std::istringstream in(read_all(proc(pid, "status")));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(proc(pid, "fd"), ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}

ProcessRef ref_of(pid_t pid) {
  const auto f = stat_fields(pid);
  return {pid, f.size() > 19 ? f[19] : ""};
}

bool alive(const ProcessRef& p) {
  const auto f = stat_fields(p.pid);
  return f.size() > 19 && f[19] == p.start_time && f[0] != "Z" && f[0] != "X";
}

}  // namespace genomed::testkit
