#include "tools/stress/resources.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tools/testkit/proc.h"

namespace genomed::stress {
namespace {

std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

std::string Footprint::to_string() const {
  return std::to_string(fds) + " fds, " + std::to_string(threads) + " threads, RssAnon " +
         std::to_string(rss_anon_kb / 1024.0).substr(0, 5) + " MiB" +
         (sanitized ? " (sanitized daemon: RSS not compared)" : "");
}

bool inspectable_genomed(pid_t pid) {
  return pid > 0 && comm_of(pid) == "genomed" && testkit::open_fds(pid) > 0;
}

Footprint footprint_of(pid_t pid) {
  Footprint f{testkit::open_fds(pid),
              testkit::thread_count(pid),
              testkit::status_field(pid, "RssAnon"),
              {}};
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code rec;
    f.fd_targets.push_back(std::filesystem::read_symlink(it->path(), rec).string());
  }
  std::sort(f.fd_targets.begin(), f.fd_targets.end());
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("libasan.so") != std::string::npos ||
        line.find("libtsan.so") != std::string::npos) {
      f.sanitized = true;
      break;
    }
  }
  return f;
}

std::string Footprint::new_fds(const Footprint& after) const {
  std::vector<std::string> added;
  std::set_difference(after.fd_targets.begin(), after.fd_targets.end(), fd_targets.begin(),
                      fd_targets.end(), std::back_inserter(added));
  std::string out;
  for (const auto& a : added) out += (out.empty() ? "" : ", ") + a;
  return out.empty() ? "none by target" : out;
}

std::vector<pid_t> workers_of(pid_t daemon) {
  std::vector<pid_t> out;
  for (pid_t child : testkit::children_of(daemon))
    if (comm_of(child) == "genome-worker") out.push_back(child);
  return out;
}

bool back_to_baseline(const Footprint& before, const Footprint& after, std::string* why) {
  std::string out;
  if (after.fds > before.fds)
    out += "fds " + std::to_string(before.fds) + " -> " + std::to_string(after.fds) + "; ";
  if (after.threads > before.threads)
    out +=
        "threads " + std::to_string(before.threads) + " -> " + std::to_string(after.threads) + "; ";
  if (!after.sanitized &&
      after.rss_anon_kb > before.rss_anon_kb + before.rss_anon_kb / 4 + 16 * 1024)
    out += "RssAnon " + std::to_string(before.rss_anon_kb) + " kB -> " +
           std::to_string(after.rss_anon_kb) + " kB (over 25 % + 16 MiB); ";
  if (why) *why = out;
  return out.empty();
}

}  // namespace genomed::stress
