#include "tools/stress/target.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "genomed/client.h"
#include "tools/stress/resources.h"
#include "tools/testkit/daemon_process.h"
#include "tools/testkit/eventually.h"
#include "tools/testkit/proc.h"

namespace genomed::stress {
namespace {

bool has_flag(const std::vector<std::string>& flags, const std::string& name) {
  for (const auto& f : flags)
    if (f == name || f.rfind(name + "=", 0) == 0) return true;
  return false;
}

std::string flag_value(const std::vector<std::string>& flags, const std::string& name) {
  for (std::size_t i = 0; i < flags.size(); ++i) {
    if (flags[i] == name && i + 1 < flags.size()) return flags[i + 1];
    if (flags[i].rfind(name + "=", 0) == 0) return flags[i].substr(name.size() + 1);
  }
  return "";
}

std::string self_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<std::size_t>(n));
  return path.substr(0, path.rfind('/'));
}

}  // namespace

Target::Target(Target&& other) noexcept
    : facts_(other.facts_), spawned_(other.spawned_), reaped_(other.reaped_),
      command_(std::move(other.command_)) {
  other.spawned_ = false;
}

Target::~Target() {
  if (spawned_ && !reaped_) (void)stop();
}

Result<Target> Target::spawn(const Options& options, const ScratchRoot& scratch) {
  Target t;
  const std::string genomed =
      options.genomed_path.empty() ? self_dir() + "/genomed" : options.genomed_path;
  std::vector<std::string> argv = {genomed, "--socket", scratch.socket(), "--root", scratch.root()};
  const auto& user = options.daemon_flags;
  // Defaults that make a short run exercise eviction and crashes: a budget
  // below the adapters' total, two workers, loads bounded well inside the
  // harness's op deadline.
  if (!has_flag(user, "--budget")) argv.insert(argv.end(), {"--budget", "12M"});
  if (!has_flag(user, "--workers")) argv.insert(argv.end(), {"--workers", "2"});
  if (!has_flag(user, "--load-timeout-ms")) argv.insert(argv.end(), {"--load-timeout-ms", "10000"});
  argv.insert(argv.end(), user.begin(), user.end());
  for (const auto& a : argv) t.command_ += (t.command_.empty() ? "" : " ") + a;
  auto process = testkit::start_genomed(argv, scratch.log());
  if (!process) return process.status();
  t.spawned_ = true;
  t.facts_.pid = process->pid;
  t.facts_.socket = scratch.socket();
  const std::string workers = flag_value(argv, "--workers");
  const std::string last_workers = has_flag(user, "--workers") ? flag_value(user, "--workers") : workers;
  if (Status s = t.learn(options, std::atoi(last_workers.c_str())); !s.ok()) return s;
  return t;
}

Result<Target> Target::attach(const Options& options) {
  Target t;
  t.facts_.socket = options.socket;
  if (Status s = t.learn(options, 0); !s.ok()) return s;
  return t;
}

Status Target::learn(const Options& options, int workers_configured) {
  ClientOptions copts;
  copts.client_name = "genome-stress setup";
  copts.connect_timeout = options.op_deadline;
  copts.request_timeout = options.op_deadline;
  auto client = Client::connect(facts_.socket, copts);
  if (!client) return client.status();
  auto stats = client->stats();
  if (!stats) return stats.status();
  facts_.budget = stat_of(*stats, "budget_bytes");
  facts_.workers_configured = workers_configured;
  if (!spawned_) {
    const auto pid = static_cast<pid_t>(client->daemon_pid());
    facts_.pid = inspectable_genomed(pid) ? pid : -1;
    // Attached: the configured number is what runs before the harness starts
    // (once the pool has started every worker).
    testkit::eventually(
        [&] {
          auto s = client->stats();
          if (s) facts_.workers_configured = static_cast<int>(stat_of(*s, "workers_alive"));
          return s && stat_of(*s, "workers_alive") > 0;
        },
        static_cast<int>(options.op_deadline.count()));
  } else {
    // Spawned: wait until every worker runs before taking the baseline.
    testkit::eventually(
        [&] {
          auto s = client->stats();
          return s && stat_of(*s, "workers_alive") == static_cast<std::uint64_t>(workers_configured);
        },
        30000);
  }
  return Status::Ok();
}

bool Target::alive() const {
  if (spawned_) {
    if (reaped_) return false;
    const char state = testkit::process_state(facts_.pid);
    return state != '?' && state != 'Z' && state != 'X';
  }
  return Client::connect(facts_.socket, "genome-stress probe").ok();
}

Status Target::stop() {
  if (!spawned_ || reaped_) return Status::Ok();
  ::kill(facts_.pid, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  pid_t done = 0;
  while ((done = ::waitpid(facts_.pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  reaped_ = true;
  if (done == 0) {
    ::kill(facts_.pid, SIGKILL);
    ::waitpid(facts_.pid, &status, 0);
    return Status(Errc::timeout, "genomed did not exit within 30 s of SIGTERM (killed)");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status(Errc::internal,
                  WIFSIGNALED(status)
                      ? "genomed died of signal " + std::to_string(WTERMSIG(status))
                      : "genomed exited with status " + std::to_string(WEXITSTATUS(status)));
  }
  return Status::Ok();
}

}  // namespace genomed::stress
