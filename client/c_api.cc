// The C interface (include/genomed/genomed.h) over the C++ client. Every
// entry point catches everything: a C caller cannot unwind a C++ exception,
// so an exception (allocation failure, a bug) becomes an error code.
#include "genomed/genomed.h"

#include <algorithm>
#include <cstdarg>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "genomed/client.h"
#include "genomed/errc.h"
#include "ipc/protocol.h"
#include "layout/resident_layout.h"

// The generated macros carry errc.h's numbers (cmake/c_errc.cmake); a few
// spot checks that the generator read the right enum.
static_assert(GENOMED_OK == static_cast<int>(genomed::Errc::ok));
static_assert(GENOMED_ERRC_NOT_FOUND == static_cast<int>(genomed::Errc::not_found));
static_assert(GENOMED_ERRC_CONFIG_MISSING_FIELD ==
              static_cast<int>(genomed::Errc::config_missing_field));
static_assert(GENOMED_ERRC_INTERNAL == static_cast<int>(genomed::Errc::internal));
static_assert(GENOMED_MODULE_LINEAR == static_cast<int>(genomed::ModuleKind::linear));
static_assert(GENOMED_MODULE_EMBEDDING == static_cast<int>(genomed::ModuleKind::embedding));
static_assert(GENOMED_MODULE_CONV == static_cast<int>(genomed::ModuleKind::conv));
static_assert(GENOMED_MAX_BATCH == genomed::ipc::kMaxBatch);
static_assert(GENOMED_MAX_TENSOR_NAME == genomed::layout::kMaxNameBytes);

struct genomed_client {
  genomed::Client client;
};

struct genomed_lease {
  genomed::Lease lease;
  // NUL-terminated copies for C: the C++ views are string_views.
  std::vector<std::string> tensor_names;
  std::vector<std::string> tensor_dtypes;
  std::vector<std::string> module_paths;
};

namespace {

using genomed::Errc;
using genomed::Status;

genomed_errc fail(genomed_error* error, Errc code, const std::string& message) {
  if (error != nullptr) {
    error->code = static_cast<genomed_errc>(code);
    const std::size_t n = std::min(message.size(), sizeof error->message - 1);
    std::memcpy(error->message, message.data(), n);
    error->message[n] = '\0';
  }
  return static_cast<genomed_errc>(code);
}

genomed_errc fail(genomed_error* error, const Status& status) {
  return fail(error, status.code(), status.message());
}

genomed_errc succeed(genomed_error* error) {
  if (error != nullptr) {
    error->code = GENOMED_OK;
    error->message[0] = '\0';
  }
  return GENOMED_OK;
}

// A failure formatted without allocating: usable where an allocation just
// failed, and before `guarded` runs.
[[gnu::format(printf, 3, 4)]] genomed_errc fail_printf(genomed_error* error, Errc code,
                                                       const char* format, ...) noexcept {
  if (error != nullptr) {
    error->code = static_cast<genomed_errc>(code);
    va_list args;
    va_start(args, format);
    std::vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
  }
  return static_cast<genomed_errc>(code);
}

// Runs `body` (which returns a genomed_errc), turning any exception into a code.
template <class Body>
genomed_errc guarded(genomed_error* error, const char* what, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail_printf(error, Errc::environment, "%s: out of memory", what);
  } catch (const std::exception& e) {
    return fail_printf(error, Errc::internal, "%s: unexpected exception: %s", what, e.what());
  } catch (...) {
    return fail_printf(error, Errc::internal, "%s: unexpected exception", what);
  }
}

genomed_errc null_argument(genomed_error* error, const char* what, const char* argument) noexcept {
  return fail_printf(error, Errc::bad_request, "%s: %s is NULL", what, argument);
}

// A string argument longer than `max` bytes (it is read no further than
// max + 1 bytes: an unterminated or huge one is never scanned to its end).
bool too_long(const char* s, std::size_t max) noexcept { return ::strnlen(s, max + 1) > max; }

genomed_errc overlong(genomed_error* error, const char* what, const char* argument,
                      std::size_t max, const char* limit) noexcept {
  return fail_printf(error, Errc::bad_request, "%s: %s is longer than %zu bytes (%s)", what,
                     argument, max, limit);
}

genomed_errc bad_timeout(genomed_error* error, const char* what, int64_t ms) noexcept {
  return fail_printf(error, Errc::bad_request,
                     "%s: timeout %lld ms is negative; give milliseconds >= 0, "
                     "GENOMED_TIMEOUT_DEFAULT or GENOMED_TIMEOUT_NONE",
                     what, static_cast<long long>(ms));
}

genomed_errc out_of_range(genomed_error* error, const char* what, const genomed_lease* lease,
                          std::size_t index, std::size_t count, const char* items) {
  return fail(error, Errc::bad_request,
              std::string(what) + ": index " + std::to_string(index) + " is out of range: '" +
                  lease->lease.name() + "' has " + std::to_string(count) + " " + items);
}

// A C timeout as the C++ client takes it; nullopt if it is no valid value.
std::optional<std::chrono::milliseconds> option_timeout(int64_t ms) {
  if (ms == GENOMED_TIMEOUT_NONE) return genomed::kNoTimeout;
  if (ms < 0) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

// A per-call timeout: GENOMED_TIMEOUT_DEFAULT is the client's option.
std::optional<genomed::Client::Timeout> call_timeout(int64_t ms) {
  if (ms == GENOMED_TIMEOUT_DEFAULT) return genomed::Client::Timeout(std::nullopt);
  const auto t = option_timeout(ms);
  if (!t) return std::nullopt;
  return genomed::Client::Timeout(*t);
}

// A handle for `lease`; if copying the names fails, the lease is released.
std::unique_ptr<genomed_lease> wrap(genomed::Lease lease) {
  auto out = std::make_unique<genomed_lease>(genomed_lease{std::move(lease), {}, {}, {}});
  const auto tensors = out->lease.tensors();
  out->tensor_names.reserve(tensors.size());
  out->tensor_dtypes.reserve(tensors.size());
  for (const auto& t : tensors) {
    out->tensor_names.emplace_back(t.name);
    out->tensor_dtypes.emplace_back(t.dtype);
  }
  for (const auto& m : out->lease.modules()) out->module_paths.emplace_back(m.path);
  return out;
}

std::size_t index_of(const genomed_lease* lease, const genomed::TensorView* view) {
  if (view == nullptr) return GENOMED_NO_TENSOR;
  return static_cast<std::size_t>(view - lease->lease.tensors().data());
}

void fill_tensor(const genomed_lease* lease, std::size_t index, genomed_tensor* out) {
  const genomed::TensorView& v = lease->lease.tensors()[index];
  out->name = lease->tensor_names[index].c_str();
  out->dtype = lease->tensor_dtypes[index].c_str();
  out->element_size = v.element_size;
  out->ndim = static_cast<uint32_t>(v.shape.size());
  out->shape = v.shape.data();
  out->data = v.data.data();
  out->byte_size = v.data.size();
  out->checksum = v.checksum;
}

}  // namespace

extern "C" {

void genomed_client_options_init(genomed_client_options* options) {
  if (options == nullptr) return;
  const genomed::ClientOptions defaults;
  options->client_name = nullptr;
  options->connect_timeout_ms = defaults.connect_timeout.count();
  options->request_timeout_ms = defaults.request_timeout.count();
  options->load_timeout_ms = defaults.load_timeout.count();
}

genomed_errc genomed_connect(const char* socket_path, const genomed_client_options* options,
                             genomed_client** client, genomed_error* error) {
  constexpr const char* what = "genomed_connect";
  if (client == nullptr) return null_argument(error, what, "client");
  *client = nullptr;
  if (socket_path == nullptr) return null_argument(error, what, "socket_path");
  if (options != nullptr && options->client_name != nullptr &&
      too_long(options->client_name, GENOMED_MAX_CLIENT_NAME)) {
    return overlong(error, what, "options->client_name", GENOMED_MAX_CLIENT_NAME,
                    "GENOMED_MAX_CLIENT_NAME");
  }
  return guarded(error, what, [&] {
    genomed::ClientOptions cpp;
    if (options != nullptr) {
      if (options->client_name != nullptr) cpp.client_name = options->client_name;
      const std::pair<int64_t, std::chrono::milliseconds*> timeouts[] = {
          {options->connect_timeout_ms, &cpp.connect_timeout},
          {options->request_timeout_ms, &cpp.request_timeout},
          {options->load_timeout_ms, &cpp.load_timeout}};
      for (const auto& [ms, field] : timeouts) {
        if (ms == GENOMED_TIMEOUT_DEFAULT) continue;  // keep the library's default
        const auto t = option_timeout(ms);
        if (!t) return bad_timeout(error, what, ms);
        *field = *t;
      }
    }
    auto connected = genomed::Client::connect(socket_path, cpp);
    if (!connected) return fail(error, connected.status());
    *client = new genomed_client{std::move(connected).value()};
    return succeed(error);
  });
}

void genomed_client_close(genomed_client* client) { delete client; }

int genomed_client_broken(const genomed_client* client) {
  return client == nullptr || client->client.broken() ? 1 : 0;
}

uint64_t genomed_client_daemon_pid(const genomed_client* client) {
  return client == nullptr ? 0 : client->client.daemon_pid();
}

uint64_t genomed_client_arena_bytes(const genomed_client* client) {
  return client == nullptr ? 0 : client->client.arena_bytes();
}

genomed_errc genomed_acquire(genomed_client* client, const char* name, int64_t timeout_ms,
                             genomed_lease** lease, genomed_error* error) {
  constexpr const char* what = "genomed_acquire";
  if (lease == nullptr) return null_argument(error, what, "lease");
  *lease = nullptr;
  if (client == nullptr) return null_argument(error, what, "client");
  if (name == nullptr) return null_argument(error, what, "name");
  if (too_long(name, GENOMED_MAX_NAME))
    return overlong(error, what, "name", GENOMED_MAX_NAME, "GENOMED_MAX_NAME");
  const auto timeout = call_timeout(timeout_ms);
  if (!timeout) return bad_timeout(error, what, timeout_ms);
  return guarded(error, what, [&] {
    auto acquired = client->client.acquire(std::string_view(name), *timeout);
    if (!acquired) return fail(error, acquired.status());
    *lease = wrap(std::move(acquired).value()).release();
    return succeed(error);
  });
}

genomed_errc genomed_reload(genomed_client* client, const char* name, int64_t timeout_ms,
                            uint64_t* generation, genomed_error* error) {
  constexpr const char* what = "genomed_reload";
  if (client == nullptr) return null_argument(error, what, "client");
  if (name == nullptr) return null_argument(error, what, "name");
  if (too_long(name, GENOMED_MAX_NAME))
    return overlong(error, what, "name", GENOMED_MAX_NAME, "GENOMED_MAX_NAME");
  const auto timeout = call_timeout(timeout_ms);
  if (!timeout) return bad_timeout(error, what, timeout_ms);
  return guarded(error, what, [&] {
    auto reloaded = client->client.reload(std::string_view(name), *timeout);
    if (!reloaded) return fail(error, reloaded.status());
    if (generation != nullptr) *generation = reloaded->generation;
    return succeed(error);
  });
}

genomed_errc genomed_publish(genomed_client* client, const char* name, const void* config,
                             size_t config_len, const void* weights, size_t weights_len,
                             int64_t timeout_ms, uint64_t* generation, genomed_error* error) {
  constexpr const char* what = "genomed_publish";
  if (client == nullptr) return null_argument(error, what, "client");
  if (name == nullptr) return null_argument(error, what, "name");
  if (config == nullptr && config_len > 0) return null_argument(error, what, "config");
  if (weights == nullptr && weights_len > 0) return null_argument(error, what, "weights");
  if (too_long(name, GENOMED_MAX_NAME))
    return overlong(error, what, "name", GENOMED_MAX_NAME, "GENOMED_MAX_NAME");
  const auto timeout = call_timeout(timeout_ms);
  if (!timeout) return bad_timeout(error, what, timeout_ms);
  return guarded(error, what, [&] {
    auto published = client->client.publish(
        std::string_view(name), {static_cast<const std::byte*>(config), config_len},
        {static_cast<const std::byte*>(weights), weights_len}, *timeout);
    if (!published) return fail(error, published.status());
    if (generation != nullptr) *generation = published->generation;
    return succeed(error);
  });
}

genomed_errc genomed_acquire_batch(genomed_client* client, const char* const* names, size_t count,
                                   int64_t timeout_ms, genomed_lease** leases,
                                   genomed_error* error) {
  constexpr const char* what = "genomed_acquire_batch";
  // Checked before `leases` is written: a count that is no batch says
  // nothing about the room behind `leases` (SIZE_MAX from a bug).
  if (count == 0 || count > GENOMED_MAX_BATCH) {
    return fail_printf(error, Errc::bad_request,
                       "%s: count %zu is not a batch: give 1..%d names (GENOMED_MAX_BATCH); "
                       "leases was left as it was",
                       what, count, GENOMED_MAX_BATCH);
  }
  if (leases == nullptr) return null_argument(error, what, "leases");
  std::fill_n(leases, count, nullptr);
  if (client == nullptr) return null_argument(error, what, "client");
  if (names == nullptr) return null_argument(error, what, "names");
  for (size_t i = 0; i < count; ++i) {
    if (names[i] == nullptr)
      return fail_printf(error, Errc::bad_request, "%s: names[%zu] is NULL", what, i);
    if (too_long(names[i], GENOMED_MAX_NAME)) {
      return fail_printf(error, Errc::bad_request,
                         "%s: names[%zu] is longer than %d bytes (GENOMED_MAX_NAME)", what, i,
                         GENOMED_MAX_NAME);
    }
  }
  const auto timeout = call_timeout(timeout_ms);
  if (!timeout) return bad_timeout(error, what, timeout_ms);
  return guarded(error, what, [&] {
    std::vector<std::string> cpp_names(names, names + count);
    auto acquired = client->client.acquire(cpp_names, *timeout);
    if (!acquired) return fail(error, acquired.status());
    // Wrap all first: an allocation failure midway releases every lease
    // (their destructors) and hands out none, keeping all-or-nothing.
    std::vector<std::unique_ptr<genomed_lease>> wrapped;
    for (auto& l : acquired.value()) wrapped.push_back(wrap(std::move(l)));
    for (size_t i = 0; i < count; ++i) leases[i] = wrapped[i].release();
    return succeed(error);
  });
}

void genomed_lease_release(genomed_lease* lease) {
  delete lease;  // ~Lease sends the one-way RELEASE
}

const char* genomed_lease_name(const genomed_lease* lease) {
  return lease == nullptr ? "" : lease->lease.name().c_str();
}
uint64_t genomed_lease_generation(const genomed_lease* lease) {
  return lease == nullptr ? 0 : lease->lease.generation();
}
const char* genomed_lease_digest(const genomed_lease* lease) {
  return lease == nullptr ? "" : lease->lease.digest().c_str();
}
uint64_t genomed_lease_id(const genomed_lease* lease) {
  return lease == nullptr ? 0 : lease->lease.id();
}
const char* genomed_lease_config_json(const genomed_lease* lease) {
  return lease == nullptr ? "" : lease->lease.config().json.c_str();
}
uint32_t genomed_lease_lora_rank(const genomed_lease* lease) {
  return lease == nullptr ? 0 : lease->lease.lora_rank();
}
double genomed_lease_lora_alpha(const genomed_lease* lease) {
  return lease == nullptr ? 0 : lease->lease.lora_alpha();
}

size_t genomed_lease_tensor_count(const genomed_lease* lease) {
  return lease == nullptr ? 0 : lease->lease.tensors().size();
}

genomed_errc genomed_lease_tensor(const genomed_lease* lease, size_t index, genomed_tensor* tensor,
                                  genomed_error* error) {
  constexpr const char* what = "genomed_lease_tensor";
  if (lease == nullptr) return null_argument(error, what, "lease");
  if (tensor == nullptr) return null_argument(error, what, "tensor");
  return guarded(error, what, [&] {
    const std::size_t count = lease->lease.tensors().size();
    if (index >= count) return out_of_range(error, what, lease, index, count, "tensors");
    fill_tensor(lease, index, tensor);
    return succeed(error);
  });
}

genomed_errc genomed_lease_find_tensor(const genomed_lease* lease, const char* name,
                                       genomed_tensor* tensor, genomed_error* error) {
  constexpr const char* what = "genomed_lease_find_tensor";
  if (lease == nullptr) return null_argument(error, what, "lease");
  if (name == nullptr) return null_argument(error, what, "name");
  if (tensor == nullptr) return null_argument(error, what, "tensor");
  if (too_long(name, GENOMED_MAX_TENSOR_NAME))
    return overlong(error, what, "name", GENOMED_MAX_TENSOR_NAME, "GENOMED_MAX_TENSOR_NAME");
  return guarded(error, what, [&] {
    const std::size_t index = index_of(lease, lease->lease.find(name));
    if (index == GENOMED_NO_TENSOR) {
      return fail(error, Errc::not_found,
                  "adapter '" + lease->lease.name() + "' has no tensor named '" + name + "'");
    }
    fill_tensor(lease, index, tensor);
    return succeed(error);
  });
}

size_t genomed_lease_module_count(const genomed_lease* lease) {
  return lease == nullptr ? 0 : lease->lease.modules().size();
}

genomed_errc genomed_lease_module(const genomed_lease* lease, size_t index, genomed_module* module,
                                  genomed_error* error) {
  constexpr const char* what = "genomed_lease_module";
  if (lease == nullptr) return null_argument(error, what, "lease");
  if (module == nullptr) return null_argument(error, what, "module");
  return guarded(error, what, [&] {
    const auto modules = lease->lease.modules();
    if (index >= modules.size()) {
      return out_of_range(error, what, lease, index, modules.size(), "modules");
    }
    const genomed::LoraModule& m = modules[index];
    module->path = lease->module_paths[index].c_str();
    module->kind = static_cast<int32_t>(m.kind);
    module->rank = m.rank;
    module->alpha = m.alpha;
    module->scaling = m.scaling;
    module->a = index_of(lease, m.a);
    module->b = index_of(lease, m.b);
    module->magnitude = index_of(lease, m.magnitude);
    module->lora_bias = index_of(lease, m.lora_bias);
    return succeed(error);
  });
}

genomed_errc genomed_lease_verify(const genomed_lease* lease, genomed_error* error) {
  constexpr const char* what = "genomed_lease_verify";
  if (lease == nullptr) return null_argument(error, what, "lease");
  return guarded(error, what, [&] {
    const Status verified = lease->lease.verify();
    return verified.ok() ? succeed(error) : fail(error, verified);
  });
}

const char* genomed_errc_name(genomed_errc code) {
  if (code < 0) return "unknown";
  const auto errc = genomed::errc_from_int(static_cast<std::uint64_t>(code));
  // errc_name's views point at string literals: NUL-terminated.
  return errc ? genomed::errc_name(*errc).data() : "unknown";
}

const char* genomed_version(void) { return GENOMED_VERSION_STRING; }

}  // extern "C"
