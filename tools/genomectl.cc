// genomectl: the command-line client of genomed, built on the public client
// library. Errors go to stderr as "error: <code>: <message>" with exit 1;
// usage errors exit 2.
#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <span>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/duration_parse.h"
#include "common/safe_text.h"
#include "genomed/client.h"

namespace {

// Whole percent of `part` in `total` (> 0), without the overflow of part *
// 100 for sizes near 2^64; the client library refuses part > total.
int percent_of(std::uint64_t part, std::uint64_t total) {
  return static_cast<int>(static_cast<long double>(part) * 100 / static_cast<long double>(total));
}

constexpr const char* kUsage = R"(usage: genomectl --socket PATH <command> [args]

commands:
  load NAME                  make adapter NAME resident (no lease); while it
                             fills, its progress goes to stderr (a bar on
                             a terminal, else a line per percent)
  unload NAME                unload NAME (cancels a load; drains if leased;
                             refused while pinned)
  prefetch NAME              warm NAME for later: a low-priority load into
                             free room only (never evicts); exit 1 with
                             'prefetch_dropped' when it does not fit
  reload NAME                load NAME's current files as a new generation and
                             swap it in once verified; leases held keep the
                             old bytes; a failed load leaves the old serving
  publish NAME DIR           hand genomed DIR/adapter_config.json and
                             DIR/adapter_model.safetensors as sealed memfds
                             under NAME (no root needed): validated as files,
                             swapped in as reload does; genomed's own user
                             only, unless --publish-uid / --publish-gid
  pin NAME                   load NAME if needed and pin it: never evicted
                             until unpinned (pins count against --pin-budget)
  unpin NAME                 make a pinned NAME evictable again
  acquire NAME [--hold S]    lease NAME, print its tensor table read from the
                             zero-copy view and its LoRA modules (path, kind,
                             effective rank and alpha, the scaling PEFT
                             applies), hold the lease S seconds (default 0),
                             then release it
  config NAME                the adapter's validated adapter_config.json
  digest NAME                one line per tensor, sorted by name:
                             <name> <DTYPE> <d0>x<d1>... <sha256 of its bytes>
  verify NAME                hash every tensor of NAME's resident copy again
                             (XXH3-64) and compare with the checksum its load
                             recorded; exit 1 naming the first that differs
  list [--json]              resident and loading adapters: state, size,
                             leases, pinned, idle time, time left until an
                             idle unload
  stats [--json]             daemon counters
  health                     exit 0 if the daemon is healthy, 1 if not

options:
  --socket PATH              the daemon's socket (or $GENOMED_SOCKET)
  --timeout SECONDS          the whole command (connect, HELLO and the
                             request) must finish within SECONDS, else it
                             fails with "error: timeout: ..." (exit 1).
                             Default: connect and HELLO 5 s, then the request
                             5 s, or 120 s for load, prefetch, acquire, pin, config,
                             digest and verify (they may wait for a load). The --hold
                             time is not counted
  --keep-alive DURATION      load, acquire, pin: unload the adapter once
                             unused this long (30s, 5m, 1h; 0: never),
                             instead of the daemon's --idle-unload
  --priority LEVEL           load, acquire, pin: high, normal (default) or low;
                             genomed runs the jobs of higher loads first
  -h, --help                 this text
)";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "genomectl: %s\n%s", why.c_str(), kUsage);
  return 2;
}

// Set by --timeout: appended to timeout errors, whose message names what was
// left of the command's deadline for the step that ran out of it.
std::string timeout_note;

int report(const genomed::Status& s) {
  std::fprintf(stderr, "error: %s: %s%s\n", std::string(genomed::errc_name(s.code())).c_str(),
               s.message().c_str(), s.code() == genomed::Errc::timeout ? timeout_note.c_str() : "");
  return 1;
}

std::string shape_text(std::span<const std::uint64_t> shape) {
  if (shape.empty()) return "scalar";
  std::string out;
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? "x" : "") + std::to_string(shape[i]);
  return out;
}

std::string sha256_hex(std::span<const std::byte> data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

int cmd_acquire(genomed::Client& client, const std::string& name, double hold_seconds,
                const genomed::LoadOptions& load_options, genomed::Client::Timeout timeout) {
  auto leases = client.acquire({name}, load_options, timeout);
  if (!leases) return report(leases.status());
  auto* lease = &leases->front();
  std::printf(
      "adapter %s  generation %llu  content %s  lease %llu  r=%u alpha=%g  %zu tensors  %zu bytes "
      "resident\n",
      lease->name().c_str(), static_cast<unsigned long long>(lease->generation()),
      lease->digest().c_str(),
      static_cast<unsigned long long>(lease->id()), lease->lora_rank(), lease->lora_alpha(),
      lease->tensors().size(), lease->bytes().size());
  std::size_t width = 6;
  for (const auto& t : lease->tensors()) width = std::max(width, t.name.size());
  std::printf("%-*s  %-8s  %-16s  %s\n", static_cast<int>(width), "tensor", "dtype", "shape",
              "bytes");
  for (const auto& t : lease->tensors()) {
    std::printf("%-*.*s  %-8.*s  %-16s  %zu\n", static_cast<int>(width),
                static_cast<int>(t.name.size()), t.name.data(), static_cast<int>(t.dtype.size()),
                t.dtype.data(), shape_text(t.shape).c_str(), t.data.size());
  }
  if (!lease->modules().empty()) {
    width = 6;
    for (const auto& m : lease->modules()) width = std::max(width, m.path.size());
    std::printf("\n%-*s  %-9s  %5s  %8s  %10s  %s\n", static_cast<int>(width), "module", "kind",
                "rank", "alpha", "scaling", "extra");
    for (const auto& m : lease->modules()) {
      const std::string kind(genomed::module_kind_name(m.kind));
      std::string extra = m.magnitude ? "dora" : "";
      if (m.lora_bias) extra += extra.empty() ? "lora_bias" : ",lora_bias";
      std::printf("%-*.*s  %-9s  %5u  %8g  %10g  %s\n", static_cast<int>(width),
                  static_cast<int>(m.path.size()), m.path.data(), kind.c_str(), m.rank, m.alpha,
                  m.scaling, extra.c_str());
    }
  }
  for (const auto& [label, names] : {std::pair{"trained biases", lease->bias_tensors()},
                                     std::pair{"saved modules", lease->saved_module_tensors()},
                                     std::pair{"other tensors", lease->other_tensors()}}) {
    if (!names.empty()) std::printf("%s: %zu tensor(s)\n", label, names.size());
  }
  std::fflush(stdout);
  if (hold_seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(hold_seconds));
  return 0;
}

int cmd_config(genomed::Client& client, const std::string& name, genomed::Client::Timeout timeout) {
  auto lease = client.acquire(name, timeout);
  if (!lease) return report(lease.status());
  std::printf("%s\n", nlohmann::ordered_json::parse(lease->config().json).dump(2).c_str());
  return 0;
}

int cmd_digest(genomed::Client& client, const std::string& name, genomed::Client::Timeout timeout) {
  auto lease = client.acquire(name, timeout);
  if (!lease) return report(lease.status());
  for (const auto& t : lease->tensors()) {  // sorted by name
    std::printf("%.*s %.*s %s %s\n", static_cast<int>(t.name.size()), t.name.data(),
                static_cast<int>(t.dtype.size()), t.dtype.data(), shape_text(t.shape).c_str(),
                sha256_hex(t.data).c_str());
  }
  return 0;
}

int cmd_verify(genomed::Client& client, const std::string& name, genomed::Client::Timeout timeout) {
  auto lease = client.acquire(name, timeout);
  if (!lease) return report(lease.status());
  if (genomed::Status s = lease->verify(); !s.ok()) return report(s);
  std::printf("%s generation %llu: %zu tensors, %zu bytes: every checksum matches (XXH3-64)\n",
              lease->name().c_str(), static_cast<unsigned long long>(lease->generation()),
              lease->tensors().size(), lease->bytes().size());
  return 0;
}

// 1234 ms -> "1.2s"
std::string seconds_text(std::uint64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

int cmd_list(genomed::Client& client, bool json, genomed::Client::Timeout timeout) {
  auto adapters = client.list(timeout);
  if (!adapters) return report(adapters.status());
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : *adapters) {
      out.push_back({{"name", a.name},
                     {"state", a.state},
                     {"bytes", a.bytes},
                     {"leases", a.leases},
                     {"generation", a.generation},
                     {"digest", a.digest},
                     {"pinned", a.pinned},
                     {"idle_ms", a.idle_ms},
                     {"fill_total", a.fill_total},
                     {"filled", a.filled},
                     {"expires_in_ms", a.expires_in_ms ? nlohmann::json(*a.expires_in_ms)
                                                       : nlohmann::json(nullptr)}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-32s  %-12s  %12s  %6s  %10s  %-6s  %9s  %10s  %s\n", "name", "state", "bytes",
              "leases", "generation", "pinned", "idle", "expires in", "content");
  for (const auto& a : *adapters) {
    const std::string expires = a.expires_in_ms ? seconds_text(*a.expires_in_ms) : "-";
    std::string state = a.state;  // "loading 42%" once its size is known
    if (a.state == "loading" && a.fill_total > 0)
      state += " " + std::to_string(percent_of(a.filled, a.fill_total)) + "%";
    // A name may hold control characters (a terminal would act on them).
    std::printf("%-32s  %-12s  %12llu  %6llu  %10llu  %-6s  %9s  %10s  %s\n",
                genomed::printable(a.name).c_str(), state.c_str(),
                static_cast<unsigned long long>(a.bytes),
                static_cast<unsigned long long>(a.leases),
                static_cast<unsigned long long>(a.generation), a.pinned ? "yes" : "no",
                seconds_text(a.idle_ms).c_str(), expires.c_str(),
                a.digest.empty() ? "-" : a.digest.c_str());
  }
  return 0;
}

int cmd_stats(genomed::Client& client, bool json, genomed::Client::Timeout timeout) {
  auto stats = client.stats(timeout);
  if (!stats) return report(stats.status());
  if (json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (const auto& [key, value] : *stats) {
      if (const auto* n = std::get_if<std::uint64_t>(&value))
        out[key] = *n;
      else
        out[key] = std::get<std::string>(value);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  for (const auto& [key, value] : *stats) {
    if (const auto* n = std::get_if<std::uint64_t>(&value)) {
      std::printf("%-20s %llu\n", key.c_str(), static_cast<unsigned long long>(*n));
    } else {
      std::printf("%-20s %s\n", key.c_str(), std::get<std::string>(value).c_str());
    }
  }
  return 0;
}

// LOAD on `client` while a second connection polls LIST for the entry's
// fill progress (replies carry no request ids, so progress cannot ride on
// the loading connection): a bar on stderr when it is a terminal, else a
// plain line per change of the percentage. Nothing is shown for a load that
// ends within the first poll.
genomed::Result<genomed::LoadInfo> load_showing_progress(
    genomed::Client& client, const std::string& socket_path, genomed::ClientOptions options,
    const std::string& name, const genomed::LoadOptions& load_options,
    genomed::Client::Timeout timeout) {
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  genomed::Result<genomed::LoadInfo> result =
      genomed::Status(genomed::Errc::internal, "the load did not run");
  std::thread loader([&] {
    auto r = client.load(name, load_options, timeout);
    std::lock_guard lock(mu);
    result = std::move(r);
    done = true;
    done_cv.notify_all();
  });
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  options.client_name = "genomectl-progress";
  std::optional<genomed::Client> watcher;
  int shown = -1;
  for (;;) {
    {
      std::unique_lock lock(mu);
      // The poll's cadence (a display rate), not a synchronisation.
      if (done_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return done; })) break;
    }
    if (!watcher) {
      auto c = genomed::Client::connect(socket_path, options);
      if (!c) continue;  // no progress shown; the load goes on
      watcher.emplace(std::move(*c));
    }
    auto list = watcher->list(std::chrono::milliseconds(2000));
    if (!list) continue;
    for (const auto& a : *list) {
      if (a.name != name || a.state != "loading" || a.fill_total == 0) continue;
      const int percent = percent_of(a.filled, a.fill_total);
      if (percent == shown) break;
      shown = percent;
      if (tty) {
        const int width = 30, full = percent * width / 100;
        std::fprintf(stderr, "\r%s [%s%s] %3d%%", genomed::printable(name).c_str(),
                     std::string(static_cast<std::size_t>(full), '#').c_str(),
                     std::string(static_cast<std::size_t>(width - full), '.').c_str(), percent);
      } else {
        std::fprintf(stderr, "loading %s: %d%% (%llu of %llu bytes)\n",
                     genomed::printable(name).c_str(), percent,
                     static_cast<unsigned long long>(a.filled),
                     static_cast<unsigned long long>(a.fill_total));
      }
      std::fflush(stderr);
    }
  }
  loader.join();
  if (tty && shown >= 0) std::fputs("\n", stderr);
  return result;
}

// DIR's two files, read whole, handed over as PUBLISH's sealed memfds.
genomed::Result<genomed::ReloadInfo> publish_dir(genomed::Client& client, const std::string& name,
                                                 const std::string& dir,
                                                 genomed::Client::Timeout timeout) {
  std::string bytes[2];
  const char* files[2] = {"adapter_config.json", "adapter_model.safetensors"};
  for (int i = 0; i < 2; ++i) {
    const std::string path = dir + "/" + files[i];
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
      return genomed::Status(genomed::Errc::file_unreadable,
                             path + " cannot be opened: " + std::strerror(errno));
    }
    char buf[1 << 16];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes[i].append(buf, n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) return genomed::Status(genomed::Errc::file_unreadable, path + ": read failed");
  }
  return client.publish(name, std::as_bytes(std::span(bytes[0])), std::as_bytes(std::span(bytes[1])),
                        timeout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = std::getenv("GENOMED_SOCKET") ? std::getenv("GENOMED_SOCKET") : "";
  std::vector<std::string> positional;
  bool json = false;
  double hold = 0;
  genomed::LoadOptions load_options;
  bool priority_given = false;
  double timeout_seconds = 0;  // 0: the defaults
  const char* argv_timeout = "";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--socket") {
      if (++i >= argc) return usage_error("--socket needs a path");
      socket_path = argv[i];
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--hold") {
      if (++i >= argc) return usage_error("--hold needs a number of seconds");
      char* end = nullptr;
      hold = std::strtod(argv[i], &end);
      if (end == argv[i] || *end != '\0' || hold < 0)
        return usage_error("--hold: invalid seconds '" + std::string(argv[i]) + "'");
    } else if (arg == "--priority") {
      if (++i >= argc) return usage_error("--priority needs high, normal or low");
      const std::string level = argv[i];
      if (level == "high") {
        load_options.priority = genomed::Priority::high;
      } else if (level == "low") {
        load_options.priority = genomed::Priority::low;
      } else if (level == "normal") {
        load_options.priority = genomed::Priority::normal;
      } else {
        return usage_error("--priority: expected high, normal or low, got '" + level + "'");
      }
      priority_given = true;
    } else if (arg == "--keep-alive") {
      if (++i >= argc) return usage_error("--keep-alive needs a duration");
      auto d = genomed::parse_duration(argv[i]);
      if (!d) return usage_error("--keep-alive: " + d.status().message());
      load_options.keep_alive = *d;
    } else if (arg == "--timeout") {
      if (++i >= argc) return usage_error("--timeout needs a number of seconds");
      char* end = nullptr;
      argv_timeout = argv[i];
      timeout_seconds = std::strtod(argv[i], &end);
      if (end == argv[i] || *end != '\0' || !(timeout_seconds > 0) ||
          timeout_seconds > 365.0 * 24 * 3600)
        return usage_error("--timeout: invalid seconds '" + std::string(argv[i]) +
                           "' (expected a number > 0)");
    } else if (arg.rfind("--", 0) == 0) {
      return usage_error("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (socket_path.empty()) return usage_error("--socket PATH is required");
  if (positional.empty()) return usage_error("no command given");
  const std::string& command = positional[0];
  const bool needs_name = command == "load" || command == "unload" || command == "acquire" ||
                          command == "digest" || command == "config" || command == "verify" ||
                          command == "pin" || command == "unpin" || command == "prefetch" ||
                          command == "reload";
  const bool takes_none = command == "list" || command == "stats" || command == "health";
  const bool publishes = command == "publish";
  if (!needs_name && !takes_none && !publishes)
    return usage_error("unknown command '" + command + "'");
  if (publishes && positional.size() != 3)
    return usage_error("publish needs an adapter NAME and a DIR holding its two files");
  if (needs_name && positional.size() != 2)
    return usage_error(command + " needs exactly one adapter NAME");
  if (takes_none && positional.size() != 1) return usage_error(command + " takes no arguments");
  if (json && command != "list" && command != "stats")
    return usage_error("--json applies to list and stats");
  if (hold > 0 && command != "acquire") return usage_error("--hold applies to acquire");
  const bool takes_load_options = command == "load" || command == "acquire" || command == "pin";
  if (load_options.keep_alive && !takes_load_options)
    return usage_error("--keep-alive applies to load, acquire and pin");
  if (priority_given && !takes_load_options)
    return usage_error("--priority applies to load, acquire and pin (a prefetch is always low)");

  // Deadlines: with --timeout, one for the whole command; without, the
  // client library's defaults for connect and for the request's kind.
  using std::chrono::milliseconds;
  const auto start = std::chrono::steady_clock::now();
  genomed::ClientOptions options;
  options.client_name = "genomectl";
  genomed::Client::Timeout request_timeout;  // nullopt: the default for its kind
  if (timeout_seconds > 0) {
    const auto total =
        std::chrono::duration_cast<milliseconds>(std::chrono::duration<double>(timeout_seconds));
    options.connect_timeout = std::max(total, milliseconds(1));
    timeout_note = " (genomectl --timeout " + std::string(argv_timeout) + ")";
  }
  auto client = genomed::Client::connect(socket_path, options);
  if (!client) return report(client.status());
  if (timeout_seconds > 0) {
    const auto left = options.connect_timeout -
                      std::chrono::ceil<milliseconds>(std::chrono::steady_clock::now() - start);
    request_timeout = std::max(left, milliseconds(1));
  }

  if (command == "acquire")
    return cmd_acquire(*client, positional[1], hold, load_options, request_timeout);
  if (command == "config") return cmd_config(*client, positional[1], request_timeout);
  if (command == "digest") return cmd_digest(*client, positional[1], request_timeout);
  if (command == "verify") return cmd_verify(*client, positional[1], request_timeout);
  if (command == "list") return cmd_list(*client, json, request_timeout);
  if (command == "stats") return cmd_stats(*client, json, request_timeout);
  if (command == "load") {
    auto r = load_showing_progress(*client, socket_path, options, positional[1], load_options,
                                   request_timeout);
    if (!r) return report(r.status());
    std::printf("%s %s: %llu bytes, generation %llu, content %s\n", r->name.c_str(),
                r->was_resident ? "was resident" : "loaded",
                static_cast<unsigned long long>(r->bytes),
                static_cast<unsigned long long>(r->generation), r->digest.c_str());
    return 0;
  }
  if (command == "reload" || publishes) {
    auto r = publishes ? publish_dir(*client, positional[1], positional[2], request_timeout)
                       : client->reload(positional[1], request_timeout);
    if (!r) return report(r.status());
    if (r->previous_generation == 0) {
      std::printf("%s loaded: %llu bytes, generation %llu, content %s (nothing was resident)\n",
                  genomed::printable(r->name).c_str(), static_cast<unsigned long long>(r->bytes),
                  static_cast<unsigned long long>(r->generation), r->digest.c_str());
    } else {
      std::printf(
          "%s reloaded: generation %llu (content %s, %llu bytes) replaces generation %llu "
          "(content %s), %s\n",
          genomed::printable(r->name).c_str(), static_cast<unsigned long long>(r->generation),
          r->digest.c_str(), static_cast<unsigned long long>(r->bytes),
          static_cast<unsigned long long>(r->previous_generation), r->previous_digest.c_str(),
          r->previous_leases == 0
              ? "freed"
              : ("freed when its " + std::to_string(r->previous_leases) + " lease(s) end").c_str());
    }
    return 0;
  }
  if (command == "prefetch") {
    auto r = client->prefetch(positional[1], request_timeout);
    if (!r) return report(r.status());
    std::printf("%s %s: %llu bytes, generation %llu\n", genomed::printable(r->name).c_str(),
                r->was_resident ? "was resident" : "prefetched",
                static_cast<unsigned long long>(r->bytes),
                static_cast<unsigned long long>(r->generation));
    return 0;
  }
  if (command == "pin" || command == "unpin") {
    auto r = command == "pin" ? client->pin(positional[1], load_options, request_timeout)
                              : client->unpin(positional[1], request_timeout);
    if (!r) return report(r.status());
    std::printf("%s %s: %llu bytes, generation %llu%s\n", genomed::printable(r->name).c_str(),
                r->pinned ? "pinned" : "unpinned", static_cast<unsigned long long>(r->bytes),
                static_cast<unsigned long long>(r->generation),
                r->was_pinned == r->pinned ? " (no change)" : "");
    return 0;
  }
  if (command == "unload") {
    auto r = client->unload(positional[1], request_timeout);
    if (!r) return report(r.status());
    if (r->outcome == "draining") {
      std::printf("%s draining: freed when its %llu lease(s) end\n", r->name.c_str(),
                  static_cast<unsigned long long>(r->leases));
    } else {
      std::printf("%s %s\n", r->name.c_str(), r->outcome.c_str());
    }
    return 0;
  }
  auto h = client->health(request_timeout);  // health
  if (!h) return report(h.status());
  std::printf("%s%s%s\n", h->healthy ? "healthy" : "unhealthy", h->reason.empty() ? "" : ": ",
              h->reason.c_str());
  return h->healthy ? 0 : 1;
}
