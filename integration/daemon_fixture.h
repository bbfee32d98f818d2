// Starts the real genomed (with its real genome-worker processes) on a fresh
// temporary root and socket, waits for its readiness notification (no
// sleeps), and stops it with SIGTERM, checking it exits cleanly.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "genomed/client.h"
#include "tools/fixture/fixture.h"
#include "tools/testkit/daemon_process.h"
#include "tools/testkit/eventually.h"
#include "tools/testkit/scratch_dir.h"

namespace genomed::testing {

struct DaemonOptions {
  std::uint64_t budget_bytes = 64ull << 20;
  int workers = 2;
  int admission_timeout_ms = 2000;
  int load_timeout_ms = 20000;
  std::vector<std::string> extra_args;
  // Runs genomed as this user (the test must run as root); its directory
  // and root are then that user's.
  std::optional<testkit::User> user;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options = {});
  ~Daemon();  // stop() if still running; then the temp dir is removed

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Sends SIGTERM and waits; returns the exit status as waitpid reported it.
  int stop();
  // Sends `sig` without waiting (stop() or wait() reaps the daemon).
  void signal(int sig) const;
  // Waits for the daemon to exit; returns the status as waitpid reported it.
  int wait();

  const std::string& root() const { return root_; }
  const std::string& socket_path() const { return socket_; }
  const std::string& dir() const { return dir_.path(); }
  pid_t pid() const { return pid_; }
  // The daemon's log so far (stderr), for failure messages.
  std::string log() const;

  // Writes adapter `name` under the root; returns its directory.
  std::string add_adapter(const std::string& name, const fixture::AdapterSpec& spec);

  // A new connection; fails the test if it cannot connect.
  Client connect() const;
  // The same without lease slots: every acquire and release is a message
  // (for tests of what the daemon does with each).
  Client connect_without_slots() const;

  // A stats counter, read over a new connection.
  std::uint64_t stat(const std::string& key) const;

 private:
  testkit::ScratchDir dir_{"genomed-it"};  // under $TMPDIR; removed after the daemon stopped
  std::string root_;
  std::string socket_;
  std::string log_path_;
  pid_t pid_ = -1;
};

// An adapter of about 1 MiB resident (rank 64, hidden 1024, 2 layers, F16):
// budgets in tests are counted in these.
inline fixture::AdapterSpec megabyte_adapter(std::uint64_t seed) {
  return {.rank = 64, .layers = 2, .hidden = 1024, .dtype = layout::DType::F16, .seed = seed};
}

// A STATS value read on `client`'s own connection, so it reflects every
// RELEASE that connection sent before (protocol.md, release). Fails the test
// (and returns 0) if there is no such stat.
std::uint64_t stat_on(Client& client, const std::string& key);

// Path of a binary of this build (genomed, genomectl, genome-worker).
std::string binary(const std::string& name);

// Runs a command, returns its exit code and its stdout and stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// With `as`, the command runs as that user (setgroups, setgid, setuid in
// the child: the test must run as root).
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
};
CommandResult run_command(const std::vector<std::string>& argv, std::optional<RunAs> as = {},
                          pid_t* child_pid = nullptr);

// Reads a whole file; empty if unreadable.
std::string read_file(const std::string& path);

using testkit::eventually;   // tools/testkit/eventually.h
using testkit::ScratchDir;  // tools/testkit/scratch_dir.h

}  // namespace genomed::testing
