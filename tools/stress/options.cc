#include "tools/stress/options.h"

#include <cstdlib>
#include <sstream>

namespace genomed::stress {

const char* op_name(Op op) {
  switch (op) {
    case Op::acquire: return "acquire";
    case Op::batch: return "batch";
    case Op::load: return "load";
    case Op::unload: return "unload";
    case Op::list: return "list";
    case Op::stats: return "stats";
    case Op::bad_acquire: return "bad-acquire";
    case Op::count: break;
  }
  return "?";
}

ChaosRates default_chaos_rates() {
  return {.kill_workers = 0.2,
          .stop_workers = 0.1,
          .kill_clients = 0.5,
          .bad_files = 0.5,
          .replace_files = 0.2,
          .rewrite_files = 0.2,
          .reload_files = 0.5,
          .stop_daemon = 0.05};
}

std::string ChaosRates::to_string() const {
  std::ostringstream out;
  const auto put = [&](const char* k, double v) {
    if (v <= 0) return;
    if (out.tellp() > 0) out << ',';
    out << k << '=' << v;
  };
  put("kill-workers", kill_workers);
  put("stop-workers", stop_workers);
  put("kill-clients", kill_clients);
  put("bad-files", bad_files);
  put("replace-files", replace_files);
  put("rewrite-files", rewrite_files);
  put("reload-files", reload_files);
  put("stop-daemon", stop_daemon);
  return out.str();
}

const char* const kUsage = R"(usage: genome-stress (--socket PATH --root DIR | --spawn [--root DIR]) [options] [-- GENOMED-FLAGS]

Drives genomed with many clients, optional chaos, and checks every byte a
client sees against the adapter files and the daemon's invariants. Exit 0
only if nothing failed (no wrong byte, no untyped or unexpected error, no
hang past the deadline, no broken invariant); 1 if something did; 2 on a
usage error. See docs/stress.md.

target:
  --socket PATH           a running genomed's socket; needs --root
  --root DIR              the adapters the daemon serves (read, never written);
                          with --spawn: copied into the harness's scratch root
  --spawn                 start and stop an own genomed on a scratch root the
                          harness owns; flags after `--` go to genomed
                          (defaults: --budget 12M --workers 2 --load-timeout-ms 10000)
  --genomed PATH          the genomed binary for --spawn (default: next to
                          genome-stress)
  --generate N            --spawn without --root: write N adapters (default 24)
  --bad-root DIR          malformed adapters the daemon also serves (a root of
                          it): bad-files acquires them (--socket mode)

workload:
  --clients N             client threads, each its own connection (default 8)
  --duration D            run time: 60s, 5m, 1h, 500ms (default 60s; at least 1ms)
  --ops N                 stop after N operations instead
  --mix SPEC              operation weights (default
                          acquire=70,batch=5,load=5,unload=10,list=5,stats=5)
  --zipf S                Zipf popularity with exponent S (default: uniform)
  --hold-ms MIN-MAX       lease hold time, uniform in [MIN, MAX] ms (default 0-10)
  --adapters A,B,...      only these adapters of the root take part
  --batch-max N           adapters per batch acquire, 2..N (default 4)

chaos:
  --chaos [SPEC]          alone: every kind that applies to the target at its
                          default rate (the report names the kinds skipped and
                          why); SPEC chooses kinds and rates in events per second:
                          kill-workers=0.2,stop-workers=0.1,kill-clients=0.5,
                          bad-files=0.5,replace-files=0.2,rewrite-files=0.2,
                          reload-files=0.5,stop-daemon=0.05
      kill-workers        SIGKILL a random genome-worker (a child of the daemon)
      stop-workers        SIGSTOP one for 0.2-3 s, then SIGCONT
      kill-clients        SIGKILL a client process of the harness while it holds
                          a lease or waits for a load
      bad-files           acquire a malformed adapter (--spawn: written into the
                          scratch root; --socket: from --bad-root)
      replace-files       replace a scratch copy's weights (rename) while in use
                          (--spawn only: a user's root is never modified)
      rewrite-files       rewrite a scratch copy's weights in place (or truncate
                          and write them again) while in use (--spawn only)
      reload-files        replace a scratch copy's files with its next version
                          and RELOAD it while clients use it: every lease must
                          read exactly one version (--spawn only)
  --mutable-adapters N    scratch copies replace-files and rewrite-files
                          write (default 3)
      stop-daemon         SIGSTOP the daemon itself for 0.2-3 s, then SIGCONT
                          (--spawn only); a pause is nobody's fault: alone, it
                          must cause no error at all, `timeout` included

verification and limits:
  --verify full|sample    full (default): hash every tensor of every lease;
                          sample: --sample-tensors random tensors of each
  --sample-tensors N      tensors --verify sample hashes per lease (default 4)
  --op-deadline D         a call not answered within D is a hang (default 60s)
  --quiesce-timeout D     how long the daemon may take to settle (default 75s)
  --allow CODE,...        also accept these error codes
  --shared                other clients use the daemon: skip the exact lease
                          and resource checks

output:
  --json FILE             the report as JSON
  --seed N                random seed (default: from the clock; printed)
  --status-interval-ms N  live status line period on a terminal (default 1000)
  --keep                  keep the scratch directory (kept anyway on failure)
  -h, --help              this text
)";

Result<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || v < 0) {
    return Status(Errc::bad_request, "'" + text + "' is not a duration (e.g. 60s, 5m, 1h, 500ms)");
  }
  const std::string unit = text.substr(used);
  double ms = 0;
  if (unit == "ms")
    ms = v;
  else if (unit.empty() || unit == "s")
    ms = v * 1e3;
  else if (unit == "m")
    ms = v * 60e3;
  else if (unit == "h")
    ms = v * 3600e3;
  else
    return Status(Errc::bad_request, "'" + text + "': unknown unit '" + unit + "' (ms, s, m, h)");
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

namespace {

Status bad(const std::string& why) { return Status(Errc::bad_request, why); }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

Result<double> parse_number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || d < 0) return bad(flag + ": '" + v + "' is not a number >= 0");
  return d;
}

Status parse_mix(const std::string& spec, std::map<Op, int>& mix) {
  mix.clear();
  for (const auto& item : split(spec, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) return bad("--mix: '" + item + "' is not OP=WEIGHT");
    const std::string name = item.substr(0, eq);
    auto w = parse_number("--mix " + name, item.substr(eq + 1));
    if (!w) return w.status();
    bool known = false;
    for (int i = 0; i < static_cast<int>(Op::bad_acquire); ++i) {
      if (name == op_name(static_cast<Op>(i))) {
        mix[static_cast<Op>(i)] = static_cast<int>(*w);
        known = true;
      }
    }
    if (!known) return bad("--mix: unknown operation '" + name + "' (acquire, batch, load, unload, list, stats)");
  }
  int total = 0;
  for (auto& [op, w] : mix) total += w;
  if (total <= 0) return bad("--mix: the weights add up to 0");
  return Status::Ok();
}

Status parse_chaos(const std::string& spec, ChaosRates& rates) {
  rates = {};
  const ChaosRates defaults = default_chaos_rates();
  // kind -> (its rate in `rates`, its default)
  const std::map<std::string, std::pair<double*, double>> kinds = {
      {"kill-workers", {&rates.kill_workers, defaults.kill_workers}},
      {"stop-workers", {&rates.stop_workers, defaults.stop_workers}},
      {"kill-clients", {&rates.kill_clients, defaults.kill_clients}},
      {"bad-files", {&rates.bad_files, defaults.bad_files}},
      {"replace-files", {&rates.replace_files, defaults.replace_files}},
      {"rewrite-files", {&rates.rewrite_files, defaults.rewrite_files}},
      {"reload-files", {&rates.reload_files, defaults.reload_files}},
      {"stop-daemon", {&rates.stop_daemon, defaults.stop_daemon}}};
  for (const auto& item : split(spec, ',')) {
    const auto eq = item.find('=');
    const std::string kind = item.substr(0, eq);
    const auto it = kinds.find(kind);
    if (it == kinds.end())
      return bad("--chaos: unknown kind '" + kind +
                 "' (kill-workers, stop-workers, kill-clients, bad-files, replace-files, reload-files, "
                 "rewrite-files, stop-daemon)");
    auto [slot, rate] = it->second;
    if (eq != std::string::npos) {
      auto r = parse_number("--chaos " + kind, item.substr(eq + 1));
      if (!r) return r.status();
      rate = *r;
    }
    *slot = rate;
  }
  return Status::Ok();
}

}  // namespace

Result<Options> parse_options(int argc, char** argv) {
  Options o;
  parse_mix("acquire=70,batch=5,load=5,unload=10,list=5,stats=5", o.mix).ok();
  for (int i = 1; i < argc; ++i) o.argv.emplace_back(argv[i]);
  for (std::size_t i = 0; i < o.argv.size(); ++i) {
    std::string flag = o.argv[i];
    std::optional<std::string> inline_value;
    if (flag.rfind("--", 0) == 0 && flag.size() > 2) {
      if (const auto eq = flag.find('='); eq != std::string::npos) {
        inline_value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
      }
    }
    const auto value = [&]() -> Result<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= o.argv.size()) return bad(flag + " needs a value");
      return o.argv[++i];
    };
    const auto integer = [&](int lo, int hi) -> Result<int> {
      auto v = value();
      if (!v) return v.status();
      char* end = nullptr;
      const long n = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || n < lo || n > hi)
        return bad(flag + ": '" + *v + "' is not an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
      return static_cast<int>(n);
    };
    const auto duration = [&]() -> Result<std::chrono::milliseconds> {
      auto v = value();
      if (!v) return v.status();
      return parse_duration(*v);
    };
#define TAKE(expr)                     \
  do {                                 \
    auto r_ = (expr);                  \
    if (!r_) return r_.status();       \
  } while (0)
#define SET(target, expr)              \
  do {                                 \
    auto r_ = (expr);                  \
    if (!r_) return r_.status();       \
    target = *r_;                      \
  } while (0)
    if (flag == "-h" || flag == "--help") {
      o.help = true;
    } else if (flag == "--") {
      o.daemon_flags.assign(o.argv.begin() + static_cast<long>(i) + 1, o.argv.end());
      break;
    } else if (flag == "--socket") {
      SET(o.socket, value());
    } else if (flag == "--root") {
      SET(o.root, value());
    } else if (flag == "--spawn") {
      o.spawn = true;
    } else if (flag == "--genomed") {
      SET(o.genomed_path, value());
    } else if (flag == "--generate") {
      SET(o.generate, integer(1, 4096));
    } else if (flag == "--bad-root") {
      SET(o.bad_root, value());
    } else if (flag == "--clients") {
      SET(o.clients, integer(1, 4096));
    } else if (flag == "--duration") {
      SET(o.duration, duration());
    } else if (flag == "--ops") {
      auto v = value();
      TAKE(v);
      auto n = parse_number("--ops", *v);
      TAKE(n);
      o.ops = static_cast<std::uint64_t>(*n);
    } else if (flag == "--mix") {
      auto v = value();
      TAKE(v);
      if (Status s = parse_mix(*v, o.mix); !s.ok()) return s;
    } else if (flag == "--zipf") {
      auto v = value();
      TAKE(v);
      SET(o.zipf, parse_number("--zipf", *v));
    } else if (flag == "--hold-ms") {
      auto v = value();
      TAKE(v);
      const auto parts = split(*v, '-');
      if (parts.empty() || parts.size() > 2) return bad("--hold-ms: expected MIN-MAX, got '" + *v + "'");
      auto lo = parse_number("--hold-ms", parts[0]);
      TAKE(lo);
      auto hi = parse_number("--hold-ms", parts.back());
      TAKE(hi);
      if (*hi < *lo) return bad("--hold-ms: MAX < MIN in '" + *v + "'");
      o.hold_min_ms = static_cast<int>(*lo);
      o.hold_max_ms = static_cast<int>(*hi);
    } else if (flag == "--adapters") {
      auto v = value();
      TAKE(v);
      o.adapters = split(*v, ',');
    } else if (flag == "--batch-max") {
      SET(o.batch_max, integer(2, 64));
    } else if (flag == "--chaos") {
      // `--chaos` alone, `--chaos SPEC` or `--chaos=SPEC`.
      std::string spec;
      if (inline_value) {
        spec = *inline_value;
      } else if (i + 1 < o.argv.size() && o.argv[i + 1].rfind("-", 0) != 0) {
        spec = o.argv[++i];
      }
      o.chaos_every_kind = spec.empty();
      if (spec.empty()) {
        o.chaos = default_chaos_rates();
      } else if (Status s = parse_chaos(spec, o.chaos); !s.ok()) {
        return s;
      }
    } else if (flag == "--mutable-adapters") {
      SET(o.mutable_adapters, integer(0, 64));
    } else if (flag == "--verify") {
      auto v = value();
      TAKE(v);
      if (*v == "full") o.verify = VerifyMode::full;
      else if (*v == "sample") o.verify = VerifyMode::sample;
      else return bad("--verify: 'full' or 'sample', got '" + *v + "'");
    } else if (flag == "--sample-tensors") {
      SET(o.sample_tensors, integer(1, 1 << 20));
    } else if (flag == "--op-deadline") {
      SET(o.op_deadline, duration());
    } else if (flag == "--quiesce-timeout") {
      SET(o.quiesce_timeout, duration());
    } else if (flag == "--allow") {
      auto v = value();
      TAKE(v);
      for (auto& c : split(*v, ',')) {
        if (!errc_from_name(c)) return bad("--allow: unknown error code '" + c + "'");
        o.allow.push_back(c);
      }
    } else if (flag == "--shared") {
      o.shared = true;
    } else if (flag == "--json") {
      SET(o.json_path, value());
    } else if (flag == "--seed") {
      auto v = value();
      TAKE(v);
      char* end = nullptr;
      o.seed = std::strtoull(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0') return bad("--seed: '" + *v + "' is not an integer");
      o.seed_given = true;
    } else if (flag == "--status-interval-ms") {
      SET(o.status_interval_ms, integer(50, 3600000));
    } else if (flag == "--keep") {
      o.keep = true;
    } else if (flag == "--victim") {
      o.victim = true;
      SET(o.socket, value());
      SET(o.victim_adapter, value());
    } else {
      return bad("unknown flag '" + o.argv[i] + "'");
    }
#undef TAKE
#undef SET
  }
  if (o.help || o.victim) return o;
  if (o.spawn && !o.socket.empty()) return bad("--spawn and --socket exclude each other");
  if (!o.spawn && o.socket.empty()) return bad("give --socket PATH --root DIR, or --spawn");
  if (!o.spawn && o.root.empty()) return bad("--socket needs --root DIR (the adapters it serves)");
  if (!o.spawn && !o.daemon_flags.empty()) return bad("flags after `--` go to a spawned genomed: add --spawn");
  if (!o.spawn && o.chaos.writes_files() && !o.chaos_every_kind)
    return bad("--chaos replace-files, rewrite-files and reload-files write adapter files: only with --spawn, on the harness's own copy");
  if (!o.spawn && o.chaos.stop_daemon > 0 && !o.chaos_every_kind)
    return bad("--chaos stop-daemon stops the daemon itself: only with --spawn, on the harness's own");
  // A run of no time executes no operation and would prove nothing.
  if (o.duration.count() <= 0)
    return bad("--duration: at least 1ms (a run of no time executes nothing and proves nothing)");
  if (o.ops && *o.ops == 0) return bad("--ops: at least 1");
  if (o.hold_max_ms > 3600000) return bad("--hold-ms: at most an hour");
  return o;
}

namespace {
std::string quoted(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_=.,/:+@%") == std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

std::string repeat_command(const Options& o) {
  std::vector<std::string> args;
  bool inserted = false;
  for (std::size_t i = 0; i < o.argv.size(); ++i) {
    const std::string& a = o.argv[i];
    if (inserted) {  // genomed's flags, verbatim
      args.push_back(a);
      continue;
    }
    if (a == "--seed") {
      ++i;
      continue;
    }
    if (a.rfind("--seed=", 0) == 0) continue;
    if (a == "--" && !inserted) {
      args.push_back("--seed");
      args.push_back(std::to_string(o.seed));
      inserted = true;
    }
    args.push_back(a);
  }
  if (!inserted) {
    args.push_back("--seed");
    args.push_back(std::to_string(o.seed));
  }
  std::string out = "genome-stress";
  for (const auto& a : args) out += " " + quoted(a);
  return out;
}

}  // namespace genomed::stress
