#include "loader/config.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/duration_parse.h"
#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/ops_config.h"
#include "worker/fault.h"

namespace genomed::loader {
namespace {

Status bad(const std::string& what) { return Status(Errc::bad_request, what); }

Result<long long> parse_int(const std::string& key, const std::string& text, long long min,
                            long long max) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used != text.size() || v < min || v > max) throw std::out_of_range("range");
    return v;
  } catch (const std::exception&) {
    return bad(key + ": expected an integer in [" + std::to_string(min) + ", " +
               std::to_string(max) + "], got " + quote(text));
  }
}

// Setters for a milliseconds, an int or a multiplier field chosen by `field`.
template <class Field>
auto ms_setter(Field field, long long min) {
  return [field, min](DaemonConfig& c, const std::string& k, const std::string& v) -> Status {
    auto n = parse_int(k, v, min, 7LL * 24 * 3600 * 1000);
    if (!n) return n.status();
    field(c) = std::chrono::milliseconds(*n);
    return Status::Ok();
  };
}

template <class Field>
auto int_setter(Field field, long long min, long long max) {
  return [field, min, max](DaemonConfig& c, const std::string& k, const std::string& v) -> Status {
    auto n = parse_int(k, v, min, max);
    if (!n) return n.status();
    field(c) = static_cast<int>(*n);
    return Status::Ok();
  };
}

template <class Field>
auto size_setter(Field field, long long min, long long max) {
  return [field, min, max](DaemonConfig& c, const std::string& k, const std::string& v) -> Status {
    auto n = parse_int(k, v, min, max);
    if (!n) return n.status();
    field(c) = static_cast<std::size_t>(*n);
    return Status::Ok();
  };
}

template <class Field>
auto double_setter(Field field) {
  return [field](DaemonConfig& c, const std::string& k, const std::string& v) -> Status {
    try {
      std::size_t used = 0;
      const double d = std::stod(v, &used);
      if (used != v.size() || !(d >= 1.0 && d <= 100.0)) throw std::out_of_range("range");
      field(c) = d;
      return Status::Ok();
    } catch (const std::exception&) {
      return bad(k + ": expected a number in [1, 100], got " + quote(v));
    }
  };
}

// Every setting, applied from text; the flag name is the key with '_' -> '-'.
// The operator flags (access, logs, drain, metrics) come from ops_config.cc.
const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> kSetters = [] {
    std::map<std::string, Setter> all = ops_setters();
    all.merge(std::map<std::string, Setter>{
      {"socket",
       [](DaemonConfig& c, const std::string&, const std::string& v) {
         c.socket_path = v;
         return Status::Ok();
       }},
      {"root",
       [](DaemonConfig& c, const std::string&, const std::string& v) {
         c.roots.push_back(v);
         return Status::Ok();
       }},
      {"budget",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto size = parse_size(v);
         if (!size) return bad(k + ": " + size.status().message());
         if (*size < (1u << 20)) return bad(k + ": at least 1M, got " + quote(v));
         if (*size > (1ull << 50)) return bad(k + ": at most 1024T, got " + quote(v));
         // Arena ranges are page-aligned, so the budget is too (rounded up).
         c.budget_bytes = (*size + 4095) / 4096 * 4096;
         return Status::Ok();
       }},
      {"pin_budget",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto size = parse_size(v);
         if (!size) return bad(k + ": " + size.status().message());
         c.pin_budget = *size;  // 0: the whole budget
         return Status::Ok();
       }},
      {"idle_unload",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto d = parse_duration(v);
         if (!d) return bad(k + ": " + d.status().message());
         c.coordinator.idle_unload = *d;  // 0: off
         return Status::Ok();
       }},
      {"worker_memory_limit",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto size = parse_size(v);
         if (!size) return bad(k + ": " + size.status().message());
         // Below this a worker cannot even read a normal adapter's header.
         if (*size != 0 && *size < (16u << 20)) {
           return bad(k + ": 0 (no limit) or at least 16M, got " + quote(v));
         }
         c.worker_memory_limit = *size;
         return Status::Ok();
       }},
      {"workers",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto n = parse_int(k, v, 1, 256);
         if (!n) return n.status();
         c.workers = static_cast<int>(*n);
         return Status::Ok();
       }},
      {"load_timeout_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.load_timeout; }, 1)},
      {"load_timeout_per_gib_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.timeout_per_gib; }, 0)},
      {"admission_timeout_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.admission_timeout; }, 0)},
      {"fill_parts",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.fill_parts; }, 0, 256)},
      {"saturated_after_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.saturated_after; }, 0)},
      {"job_retries",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.job_retries; }, 0, 100)},
      {"kill_grace_ms", ms_setter(
                            [](DaemonConfig & c) -> auto& { return c.kill_grace; }, 0)},
      {"restart_backoff_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.restart.backoff_first; }, 0)},
      {"restart_backoff_multiplier",
       double_setter([](DaemonConfig & c) -> auto& { return c.restart.backoff_multiplier; })},
      {"restart_backoff_max_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.restart.backoff_max; }, 0)},
      {"restart_intensity",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.restart.max_restarts; }, 0, 1 << 20)},
      {"restart_period_ms", ms_setter(
                                [](DaemonConfig & c) -> auto& { return c.restart.period; }, 1)},
      {"quarantine_strikes",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.quarantine.strikes; }, 1, 1 << 20)},
      {"quarantine_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.quarantine.duration; }, 0)},
      {"breaker_failures",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.breaker.failure_threshold; }, 1,
           1 << 20)},
      {"breaker_window_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.breaker.window; }, 1)},
      {"breaker_cooldown_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.breaker.cooldown; }, 0)},
      {"breaker_cooldown_multiplier", double_setter([](DaemonConfig & c) -> auto& {
         return c.coordinator.breaker.cooldown_multiplier;
       })},
      {"breaker_cooldown_max_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.breaker.max_cooldown; }, 0)},
      {"breaker_half_open_probes",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.breaker.half_open_probes; }, 1,
           1 << 20)},
      {"queue_limit", size_setter([](DaemonConfig & c) -> auto& { return c.queue_limit; }, 1,
                                  1 << 20)},
      {"handshake_timeout_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.connections.handshake_timeout; }, 1)},
      {"idle_timeout_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.connections.idle_timeout; }, 0)},
      {"write_timeout_ms",
       ms_setter(
           [](DaemonConfig & c) -> auto& { return c.connections.write_timeout; }, 1)},
      {"max_connections",
       size_setter(
           [](DaemonConfig & c) -> auto& { return c.connections.max_connections; }, 1, 1 << 20)},
      {"max_connections_per_uid",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto n = parse_int(k, v, 0, 1 << 20);
         if (!n) return n.status();
         c.max_connections_per_uid = static_cast<std::size_t>(*n);  // 0: no per-uid limit
         return Status::Ok();
       }},
      {"max_leases_per_connection",
       size_setter(
           [](DaemonConfig & c) -> auto& { return c.coordinator.max_leases_per_connection; }, 1,
           1 << 24)},
      {"lease_slots",
       size_setter([](DaemonConfig & c) -> auto& { return c.connections.lease_slots; }, 0,
                   ipc::kMaxLeaseSlots)},
      {"max_pipelined_requests",
       size_setter(
           [](DaemonConfig & c) -> auto& { return c.connections.max_pipelined_requests; }, 1,
           4096)},
      {"max_request_threads",
       int_setter(
           [](DaemonConfig & c) -> auto& { return c.connections.max_request_threads; }, 0,
           1 << 20)},
      {"cold_reads",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         if (v != "buffered" && v != "direct") {
           return bad(k + ": expected buffered or direct, got " + quote(v));
         }
         c.direct_cold_reads = v == "direct";
         return Status::Ok();
       }},
      {"log_level",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         static const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                         "error", "critical", "off"};
         for (const char* level : kLevels) {
           if (v == level) {
             c.log_level = v;
             return Status::Ok();
           }
         }
         return bad(k + ": expected trace, debug, info, warn, error, critical or off, got " +
                    quote(v));
       }},
      {"base_model",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         if (v.empty()) return bad(k + ": expected a directory, got ''");
         c.base_model = v;
         return Status::Ok();
       }},
      {"ready_fd",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto n = parse_int(k, v, 0, 1 << 20);
         if (!n) return n.status();
         c.ready_fd = static_cast<int>(*n);
         return Status::Ok();
       }},
      {"worker_fault",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         if (auto fault = jobs::parse_fault(v); !fault)
           return bad(k + ": " + fault.status().message());
         c.worker_fault = v;
         return Status::Ok();
       }},
      {"worker_path",
       [](DaemonConfig& c, const std::string&, const std::string& v) {
         c.worker_path = v;
         return Status::Ok();
       }},
    });
    return all;
  }();
  return kSetters;
}

std::string flag_to_key(std::string flag) {
  for (auto& ch : flag) {
    if (ch == '-') ch = '_';
  }
  return flag;
}

// The JSON type each key takes. Values are never coerced: a number where a
// path belongs, or a string of digits where a count belongs, is a mistake the
// operator should hear about.
enum class JsonKind { string, integer, number, size, id };

JsonKind json_kind(const std::string& key) {
  for (const char* k :
       {"socket", "root", "log_level", "worker_path", "worker_fault", "base_model", "cold_reads"}) {
    if (key == k) return JsonKind::string;
  }
  if (ops_setters().contains(key)) {
    return ops_key_is_string(key) ? JsonKind::string : JsonKind::id;
  }
  if (key == "budget" || key == "worker_memory_limit" || key == "pin_budget" ||
      key == "idle_unload") {
    return JsonKind::size;  // "8G" or a number of bytes
  }
  if (key.ends_with("_multiplier")) return JsonKind::number;
  return JsonKind::integer;
}

// The value as the flag's text, or an error naming the key and both types.
Result<std::string> json_value_text(const std::string& where, const std::string& key,
                                    const nlohmann::json& value) {
  const JsonKind kind = json_kind(key);
  const bool integer = value.is_number_integer();
  if (value.is_string() &&
      (kind == JsonKind::string || kind == JsonKind::size || kind == JsonKind::id)) {
    return value.get<std::string>();
  }
  if (integer && kind != JsonKind::string) {
    return value.is_number_unsigned() ? std::to_string(value.get<std::uint64_t>())
                                      : std::to_string(value.get<long long>());
  }
  if (value.is_number_float() && kind == JsonKind::number) return value.dump();
  const char* want = kind == JsonKind::string    ? "a string"
                     : kind == JsonKind::size    ? "a size string (\"8G\") or a number of bytes"
                     : kind == JsonKind::id      ? "a name, a number or a comma list of them"
                     : kind == JsonKind::integer ? "an integer"
                                                 : "a number";
  return bad(where + ": " + quote(key) + " must be " + want + ", found " + value.type_name() + " " +
             printable(value.dump(), 40));
}

Status apply_json_file(DaemonConfig& config, const std::string& path) {
  std::ifstream in(path);
  if (!in) return bad("--config: cannot read " + quote(path));
  std::stringstream text;
  text << in.rdbuf();
  const std::string where = "--config " + path;
  // nlohmann keeps the last of repeated keys; a repeated setting is refused
  // instead, since which one the operator meant is unknowable.
  std::set<std::string> seen;
  std::string repeated;
  const nlohmann::json doc = nlohmann::json::parse(
      text.str(),
      [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (depth == 1 && event == nlohmann::json::parse_event_t::key &&
            !seen.insert(parsed.get<std::string>()).second && repeated.empty()) {
          repeated = parsed.get<std::string>();
        }
        return true;
      },
      /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad(where + ": not a JSON object");
  if (!repeated.empty()) return bad(where + ": key " + quote(repeated) + " is given twice");
  if (doc.contains("root") && doc.contains("roots")) {
    return bad(where + ": give either 'root' or 'roots', not both");
  }
  for (const auto& [key, value] : doc.items()) {
    const std::string name = key == "roots" ? "root" : key;
    const auto it = setters().find(name);
    if (it == setters().end()) return bad(where + ": unknown key " + quote(key));
    std::vector<std::string> values;
    if (name == "root") {
      if (!value.is_array())
        return bad(where + ": " + quote(key) + " must be a list of directories");
      for (const auto& v : value) {
        GENOMED_ASSIGN_OR_RETURN(std::string dir, json_value_text(where, "root", v));
        values.push_back(std::move(dir));
      }
    } else {
      GENOMED_ASSIGN_OR_RETURN(std::string v, json_value_text(where, key, value));
      values.push_back(std::move(v));
    }
    for (const auto& v : values) GENOMED_RETURN_IF_ERROR(it->second(config, key, v));
  }
  return Status::Ok();
}

std::string default_worker_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "genome-worker";
  std::string self(buf, static_cast<std::size_t>(n));
  return self.substr(0, self.rfind('/') + 1) + "genome-worker";
}

}  // namespace

std::uint64_t default_pin_budget(std::uint64_t budget_bytes) {
  return budget_bytes / 2 / 4096 * 4096;
}

std::size_t default_max_connections_per_uid(std::size_t max_connections) {
  return std::max<std::size_t>(1, max_connections * 3 / 4);  // at most 1 << 20 (its setter)
}

std::string usage_text() {
  return R"(usage: genomed --socket PATH --root DIR [--root DIR ...] [options]

Loads LoRA adapters (PEFT adapter_config.json + adapter_model.safetensors)
into one shared-memory arena and serves zero-copy, read-only views of them to
local clients over a Unix socket. Runs until SIGINT or SIGTERM.

options:
  --socket PATH               Unix socket to listen on (required)
  --root DIR                  directory holding adapters as DIR/NAME/; repeat
                              for several roots, searched in order (required).
                              Held open from start-up; names are opened beneath
                              it and no symlink is followed
  --budget SIZE               arena size = byte budget of resident adapters,
                              e.g. 512M, 8G (default 1G; rounded up to 4K)
  --pin-budget SIZE           bytes the pinned adapters may hold together
                              (their page-rounded ranges); a PIN past it is
                              'pin_budget_exceeded' (default: half of
                              --budget; 0: the whole budget). Pinned adapters
                              are never evicted and outlive their connection:
                              the rest of the budget stays for leases
  --idle-unload DURATION      unload an adapter nobody leases, pins or asks
                              for during DURATION (30s, 5m, 1h; default 0:
                              never). A request's keep_alive overrides it for
                              the adapters it names
  --workers N                 loader worker processes (default: cores)
  --worker-memory-limit SIZE  memory each worker may allocate beyond what it
                              maps at start (RLIMIT_AS), e.g. 512M; a load
                              that needs more fails with 'limit_exceeded' and
                              the worker lives on (default 1G; 0: no limit)
  --cold-reads MODE           how workers read weights mostly not in the page
                              cache: direct, parallel O_DIRECT reads that
                              leave the page cache as it was (buffered where
                              the file system refuses them), or buffered,
                              through the page cache with the kernel's
                              readahead (default direct)
  --admission-timeout-ms MS   how long a request waits, in arrival order, for
                              room when the budget is full (default 5000)
  --queue-limit N             pending worker jobs before loads fail with
                              'overloaded' (default 256)
  --max-connections N         clients served at once (default 1024). At the
                              limit a new client takes the place of the
                              connection idle longest that holds no lease,
                              of its own uid or of a uid holding more
                              connections (that one is told 'overloaded');
                              if none may be closed, the new client is
                              refused with 'overloaded'
  --max-connections-per-uid N  connections one uid may hold at once (default:
                              three quarters of --max-connections, at least
                              1; 0: no per-uid limit). Connections holding
                              leases are never closed for room: the default
                              always leaves a quarter of the connections to
                              other uids, while a node serving one uid loses
                              only a quarter. At it a new client of that uid
                              takes the place of its uid's connection idle
                              longest that holds no lease, or is refused
                              with 'overloaded'
  --max-leases-per-connection N  leases one client connection may hold at
                              once; an ACQUIRE past it is refused with
                              'limit_exceeded' (default 4096)
  --lease-slots N             lease slots offered to each client that asks:
                              repeat acquires of an adapter through one are
                              taken in shared memory, without a request
                              (default 64; 0: none; at most 4096)
  --max-pipelined-requests N  requests of one connection read ahead of the
                              one being served; with N waiting genomed stops
                              reading that socket until one is answered
                              (default 16; RELEASEs never count)
  --handshake-timeout-ms MS   a client that sends no HELLO within MS after
                              connecting is closed (default 5000)
  --idle-timeout-ms MS        a client holding no lease that sends nothing for
                              MS is closed (default 0: never). Clients holding
                              leases are never closed for being idle: they may
                              be reading tensors without a word to genomed
  --write-timeout-ms MS       a client that does not read a reply within MS is
                              closed and its leases released (default 10000)
  --max-request-threads N     threads serving requests at most (default 0:
                              --max-connections plus cores). As many as cores
                              always run; one more starts only while every
                              one waits inside a request (a load, room in
                              the budget) and ends when idle. Idle clients
                              take no thread. Below --max-connections, once
                              N requests wait at once, other clients (their
                              releases too) wait until one returns
  --base-model DIR            a base model as transformers saves it (config.json
                              + model.safetensors or model.safetensors.index.json);
                              every adapter's modules are checked against its
                              weight shapes (headers only are read) and a
                              mismatch is 'incompatible_base_model'. Read once
                              at start: an unreadable one stops genomed

failure handling (docs/failure-model.md):
  --load-timeout-ms MS        deadline of a probe job, and the base deadline of
                              a fill job (default 30000)
  --load-timeout-per-gib-ms MS  added to a fill's deadline per GiB (default 4000)
  --fill-parts N              workers one fill of 8 MiB or more is split
                              across (default 0: all workers)
  --job-retries K             re-runs of a job whose worker died, each on a
                              fresh worker (default 2)
  --saturated-after-ms MS     health reports the loader pool saturated (and
                              unhealthy) once every worker has been on its
                              current job for MS: slow jobs hold the pool and
                              cold loads wait (default 5000; 0: never)
  --kill-grace-ms MS          SIGTERM -> SIGKILL grace for a hung worker
                              (default 500)
  --restart-backoff-ms MS     first delay before replacing a dead worker
                              (default 50)
  --restart-backoff-multiplier X  growth per consecutive death
                              (default 2)
  --restart-backoff-max-ms MS cap of that delay (default 5000)
  --restart-intensity R       more than R restarts within the period pause
                              spawning for one period: unhealthy (default 10)
  --restart-period-ms MS      that period (default 30000)
  --quarantine-strikes N      worker deaths caused by one adapter before it is
                              quarantined (default 2)
  --quarantine-ms MS          how long a quarantine lasts (default 60000)
  --breaker-failures F        worker failures within the window that open the
                              circuit breaker (default 5)
  --breaker-window-ms MS      that sliding window (default 10000)
  --breaker-cooldown-ms MS    how long it stays open first (default 5000)
  --breaker-cooldown-multiplier X  growth after a failed probe (default 2)
  --breaker-cooldown-max-ms MS  cap of the cool-down (default 60000)
  --breaker-half-open-probes N  loads admitted while half-open (default 1)
  --log-level LEVEL           trace|debug|info|warn|error|critical|off
                              (default info)
  --worker-path PATH          genome-worker executable (default: next to genomed)
  --worker-fault SPEC         tests only: inject a fault into every worker,
                              ACTION@STAGE[:MATCH] (see worker/fault.h); needs
                              a build configured with
                              -DGENOMED_FAULT_INJECTION=ON )" +
         std::string(jobs::fault_injection_built() ? "(this build has it)"
                                                   : "(this build does not)") +
         R"(
  --ready-fd N                write "ready\n" to descriptor N and close it once
                              the socket accepts clients (for supervisors/tests)
  --config FILE.json          the same settings as a JSON object; keys are the
                              flag names with '_' for '-' ("root" is a list);
                              flags on the command line override the file
  -h, --help                  this text
)" + ops_usage_text();
}

Result<CommandLine> parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  cl.config.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Two passes: the config file first, then flags over it.
  std::vector<std::pair<std::string, std::string>> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      cl.help = true;
      return cl;
    }
    if (arg.rfind("--", 0) != 0) return bad("unexpected argument " + quote(arg) + "; see --help");
    std::string name = arg.substr(2);
    std::string value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else {
      if (i + 1 >= argc) return bad("--" + name + " needs a value; see --help");
      value = argv[++i];
    }
    if (name == "config") {
      GENOMED_RETURN_IF_ERROR(apply_json_file(cl.config, value));
      continue;
    }
    if (setters().find(flag_to_key(name)) == setters().end())
      return bad("unknown option " + quote("--" + name) + "; see --help");
    flags.emplace_back(name, value);
  }
  // Roots given as flags replace the file's roots rather than adding to them.
  bool roots_from_flags = false;
  for (const auto& [name, value] : flags) {
    const std::string key = flag_to_key(name);
    if (key == "root" && !roots_from_flags) {
      cl.config.roots.clear();
      roots_from_flags = true;
    }
    GENOMED_RETURN_IF_ERROR(setters().at(key)(cl.config, "--" + name, value));
  }
  if (cl.config.socket_path.empty()) return bad("--socket PATH is required; see --help");
  if (cl.config.roots.empty()) return bad("at least one --root DIR is required; see --help");
  if (cl.config.worker_path.empty()) cl.config.worker_path = default_worker_path();
  cl.config.coordinator.pin_budget =
      cl.config.pin_budget.value_or(default_pin_budget(cl.config.budget_bytes));
  cl.config.connections.max_connections_per_uid = cl.config.max_connections_per_uid.value_or(
      default_max_connections_per_uid(cl.config.connections.max_connections));
  return cl;
}

}  // namespace genomed::loader
