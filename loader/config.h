// genomed's settings: defaults, the command line, and --config FILE.json
// (the same keys as the long flags, with '-' written as '_'). Flags given on
// the command line override the file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "loader/connection.h"
#include "loader/coordinator.h"
#include "loader/ops_options.h"
#include "loader/pool.h"

namespace genomed::loader {

struct DaemonConfig {
  std::string socket_path;
  std::vector<std::string> roots;
  std::string base_model;  // --base-model DIR: adapters are checked against it ("" = none)
  std::uint64_t budget_bytes = 1ull << 30;
  int workers = 0;                 // parse_command_line defaults it to the number of cores
  CoordinatorOptions coordinator;  // deadlines, retries, breaker, quarantine
  // --pin-budget as given (0: the whole budget). Unset: half the budget
  // (default_pin_budget), so that pins, which outlive their connection,
  // cannot take the room every other client's leases need. parse_command_line
  // resolves it into coordinator.pin_budget.
  std::optional<std::uint64_t> pin_budget;
  std::chrono::milliseconds kill_grace{500};
  RestartOptions restart;
  std::size_t queue_limit = 256;
  ConnectionLimits connections;  // handshake, idle and write deadlines; connection caps
  // --max-connections-per-uid as given (0: no per-uid limit). Unset: three
  // quarters of --max-connections (default_max_connections_per_uid).
  // parse_command_line resolves it into connections.max_connections_per_uid.
  std::optional<std::size_t> max_connections_per_uid;
  std::string log_level = "info";
  // --worker-memory-limit: address space each worker may add to what it maps
  // at start (RLIMIT_AS); 0 = none. Normal adapters need a few MiB, the
  // largest header the limits allow a few hundred.
  std::uint64_t worker_memory_limit = 1ull << 30;
  // --cold-reads: how workers read weights that are mostly not in the page
  // cache. true (direct, the default): parallel O_DIRECT reads
  // (worker/format/read_into.h). false (buffered): through the page cache
  // with the kernel's readahead, as cached files are read. performance.md
  // has why direct is the default.
  bool direct_cold_reads = true;
  std::string worker_path;   // default: genome-worker next to the genomed binary
  std::string worker_fault;  // tests only: passed to workers as --fault
  int ready_fd = -1;         // written "ready\n" and closed once serving (service managers, tests)
  OperationsOptions ops;     // access control, log format, drain, metrics (loader/ops_config.cc)
};

struct CommandLine {
  DaemonConfig config;
  bool help = false;
};

// Parses argv (and the --config file it names). Errors name the flag or key
// and what was expected (Errc::bad_request).
Result<CommandLine> parse_command_line(int argc, const char* const* argv);

// The pin budget when --pin-budget is not given: half of `budget_bytes`,
// rounded down to whole pages.
std::uint64_t default_pin_budget(std::uint64_t budget_bytes);

// Connections one uid may hold when --max-connections-per-uid is not given:
// three quarters of `max_connections`, rounded down, at least 1. Another uid
// always finds a quarter of the connections it cannot take, and a node
// serving one uid loses only that quarter.
std::size_t default_max_connections_per_uid(std::size_t max_connections);

// The --help text; true to the flags parse_command_line accepts.
std::string usage_text();

}  // namespace genomed::loader
