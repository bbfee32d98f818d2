#include "integration/daemon_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tools/testkit/daemon_process.h"

namespace genomed::testing {

std::string binary(const std::string& name) { return std::string(GENOMED_BIN_DIR) + "/" + name; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Daemon::Daemon(DaemonOptions options) {
  root_ = dir_ / "root";
  socket_ = dir_ / "genomed.sock";
  log_path_ = dir_ / "genomed.log";
  ::mkdir(root_.c_str(), 0755);
  if (options.user) {
    // Where it creates its socket (and reads its root): the user's own.
    for (const std::string& d : {dir_.path(), root_}) {
      if (::chown(d.c_str(), options.user->uid, options.user->gid) != 0)
        throw std::runtime_error("chown " + d + ": " + std::strerror(errno));
    }
  }

  std::vector<std::string> args = {binary("genomed"),
                                   "--socket",
                                   socket_,
                                   "--root",
                                   root_,
                                   "--budget",
                                   std::to_string(options.budget_bytes),
                                   "--workers",
                                   std::to_string(options.workers),
                                   "--admission-timeout-ms",
                                   std::to_string(options.admission_timeout_ms),
                                   "--load-timeout-ms",
                                   std::to_string(options.load_timeout_ms),
                                   "--log-level",
                                   "debug"};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  auto started = testkit::start_genomed(args, log_path_, std::chrono::seconds(30),
                                        /*stdout_too=*/false, options.user);
  if (!started) throw std::runtime_error(started.status().message());
  pid_ = started->pid;
}

Daemon::~Daemon() {
  if (pid_ > 0) stop();
}

void Daemon::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return wait();
}

int Daemon::wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string Daemon::log() const { return read_file(log_path_); }

std::string Daemon::add_adapter(const std::string& name, const fixture::AdapterSpec& spec) {
  const std::string path = root_ + "/" + name;
  const Status s = fixture::write_adapter(path, spec);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return path;
}

Client Daemon::connect() const {
  auto c = Client::connect(socket_, "integration-test");
  if (!c) throw std::runtime_error("connect failed: " + c.status().to_string());
  return std::move(c).value();
}

Client Daemon::connect_without_slots() const {
  ClientOptions options;
  options.client_name = "integration-test";
  options.lease_slots = false;
  auto c = Client::connect(socket_, options);
  if (!c) throw std::runtime_error("connect failed: " + c.status().to_string());
  return std::move(c).value();
}

std::uint64_t Daemon::stat(const std::string& key) const {
  auto stats = connect().stats();
  if (!stats) throw std::runtime_error("stats failed: " + stats.status().to_string());
  for (const auto& [k, v] : *stats) {
    if (k == key) return std::get<std::uint64_t>(v);
  }
  throw std::runtime_error("no stat named " + key);
}

std::uint64_t stat_on(Client& client, const std::string& key) {
  auto stats = client.stats();
  EXPECT_TRUE(stats.ok()) << stats.status().to_string();
  if (!stats.ok()) return 0;
  for (const auto& [k, v] : *stats) {
    if (k == key) return std::get<std::uint64_t>(v);
  }
  ADD_FAILURE() << "no stat " << key;
  return 0;
}

CommandResult run_command(const std::vector<std::string>& argv_in, std::optional<RunAs> as,
                          pid_t* child_pid) {
  const ScratchDir scratch("genomed-cmd");
  std::string out_path = scratch / "out";
  std::string err_path = scratch / "err";
  const int out_fd = ::open(out_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const int err_fd = ::open(err_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  std::vector<std::string> args = argv_in;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (as && (::setgroups(0, nullptr) != 0 || ::setgid(as->gid) != 0 || ::setuid(as->uid) != 0)) {
      ::_exit(126);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (child_pid) *child_pid = pid;
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out_fd);
  ::close(err_fd);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

}  // namespace genomed::testing
