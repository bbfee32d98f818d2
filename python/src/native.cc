// genomed._native: the C++ client library (include/genomed/client.h) bound
// to Python with nanobind. The Python API (genomed.connect, Client, Lease,
// the errors) is python/genomed/_native_client.py over this module; this file
// only translates: Status -> the genomed.Error the package's error factory
// makes, C++ views -> read-only numpy arrays, and it drops the GIL around
// every call that can wait.
//
// Lifetime. A NativeLease holds its genomed::Lease through a shared_ptr.
// Every numpy array it hands out has as its base one capsule per lease that
// holds another reference, so the C++ Lease -- and with it the daemon's
// lease (socket or lease slot) and the arena mapping -- ends only when both
// release() was called (or the NativeLease was collected) and the last array
// is gone. The capsule's destructor runs ~Lease, which releases without
// waiting for other threads' requests (client.h).
#define PY_ARRAY_UNIQUE_SYMBOL genomed_native_ARRAY_API
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <numpy/arrayobject.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "genomed/client.h"
#include "genomed/errc.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// genomed._errors.make(code, message) -> genomed.Error and
// genomed._errors.timeout_error(message) -> CallTimeoutError (a deadline of
// this client ran out, as opposed to a timeout the daemon reports), set by the
// package at import (set_error_factory). Never freed: they live as long as
// the module.
PyObject* g_error_factory = nullptr;
PyObject* g_timeout_factory = nullptr;

// `local_timeout`: a timeout status is this client's own deadline.
[[noreturn]] void raise(const genomed::Status& status, bool local_timeout = false) {
  // A signal handler's exception (KeyboardInterrupt) abandoned the wait
  // (interrupted_by_signal): it is raised, not the Status.
  if (status.code() == genomed::Errc::cancelled && PyErr_Occurred()) throw nb::python_error();
  std::string code(genomed::errc_name(status.code()));
  if (g_error_factory == nullptr) throw std::runtime_error(code + ": " + status.message());
  nb::object exc = status.code() == genomed::Errc::timeout && local_timeout
                       ? nb::borrow(g_timeout_factory)(status.message())
                       : nb::borrow(g_error_factory)(code, status.message());
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw nb::python_error();
}

// ClientOptions::interrupted: a signal interrupted a wait (the GIL is
// released there). Runs the Python signal handlers now, as the interpreter
// would between bytecodes; one that raises (KeyboardInterrupt, a server's
// request-timeout handler) abandons the call, which breaks the connection as
// a timeout does, and raise() then raises the handler's exception.
std::string interrupted_by_signal() {
  nb::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() == 0) return {};
  PyObject* type = PyErr_Occurred();  // set: the handler's exception, raised by raise()
  return type != nullptr ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "a signal";
}

// A call's timeout is the client's own deadline when it broke the connection
// (the request went out and no reply came) or when it never got its turn
// behind another thread's request; a timeout the daemon answers leaves the
// connection usable.
bool own_deadline(const genomed::Status& s, const genomed::Client* c) {
  return c == nullptr || c->broken() ||
         s.message().find("another thread's request") != std::string::npos;
}

template <class T>
T take(genomed::Result<T>&& r, const genomed::Client* c = nullptr) {
  if (!r.ok()) raise(r.status(), own_deadline(r.status(), c));
  return std::move(r).value();
}

// Seconds (Python float) -> the C++ per-call timeout; None: wait for ever.
// A positive time never rounds down to 0 ms.
genomed::Client::Timeout timeout_of(std::optional<double> seconds) {
  if (!seconds) return genomed::kNoTimeout;
  double ms = std::ceil(*seconds * 1000.0);
  if (!(ms >= 0)) ms = 0;  // negative or NaN: expired
  if (ms >= 1e15) return genomed::kNoTimeout;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::chrono::milliseconds option_ms(std::optional<double> seconds) {
  return *timeout_of(seconds);
}

genomed::LoadOptions load_options(std::optional<std::int64_t> keep_alive_ms, int priority) {
  genomed::LoadOptions o;
  if (keep_alive_ms) o.keep_alive = std::chrono::milliseconds(*keep_alive_ms);
  o.priority = static_cast<genomed::Priority>(priority);
  return o;
}

// The numpy type of a safetensors dtype name. BF16 and the F8 types have
// none: their raw bits (uint16 / uint8), as Lease.dtypes and to_torch() say.
int numpy_type(std::string_view dtype) {
  static const std::pair<std::string_view, int> kTypes[] = {
      {"BOOL", NPY_BOOL},   {"U8", NPY_UINT8},       {"I8", NPY_INT8},
      {"F8_E5M2", NPY_UINT8}, {"F8_E4M3", NPY_UINT8}, {"F8_E8M0", NPY_UINT8},
      {"I16", NPY_INT16},   {"U16", NPY_UINT16},     {"F16", NPY_FLOAT16},
      {"BF16", NPY_UINT16}, {"I32", NPY_INT32},      {"U32", NPY_UINT32},
      {"F32", NPY_FLOAT32}, {"F64", NPY_FLOAT64},    {"I64", NPY_INT64},
      {"U64", NPY_UINT64}};
  for (const auto& [name, type] : kTypes) {
    if (name == dtype) return type;
  }
  return -1;
}

// A read-only numpy array of `shape` over `data`, whose base is `owner`.
nb::object array_view(int type, std::span<const std::uint64_t> shape, const void* data,
                      PyObject* owner) {
  npy_intp dims[NPY_MAXDIMS];
  if (shape.size() > NPY_MAXDIMS) {
    raise(genomed::Status(genomed::Errc::layout_invalid, "numpy cannot view a tensor of " +
                                                             std::to_string(shape.size()) +
                                                             " dimensions"));
  }
  for (std::size_t i = 0; i < shape.size(); ++i) dims[i] = static_cast<npy_intp>(shape[i]);
  PyObject* arr = PyArray_NewFromDescr(&PyArray_Type, PyArray_DescrFromType(type),
                                       static_cast<int>(shape.size()), dims, nullptr,
                                       const_cast<void*>(data), NPY_ARRAY_CARRAY_RO, nullptr);
  if (arr == nullptr) throw nb::python_error();
  Py_INCREF(owner);
  if (PyArray_SetBaseObject(reinterpret_cast<PyArrayObject*>(arr), owner) != 0) {
    Py_DECREF(arr);
    throw nb::python_error();
  }
  return nb::steal(arr);
}

using LeasePtr = std::shared_ptr<genomed::Lease>;

// The capsule every array of one lease has as its base: holds the lease.
nb::object lease_owner(const LeasePtr& lease) {
  return nb::capsule(new LeasePtr(lease), "genomed.lease", [](void* p) noexcept {
    auto* held = static_cast<LeasePtr*>(p);
    // ~Lease may write a RELEASE (bounded by request_timeout): without the GIL.
    nb::gil_scoped_release nogil;
    delete held;
  });
}

// Keeps the Client (its Connection: the arena mapping) alive under Client.arena.
nb::object client_owner(std::shared_ptr<genomed::Client> client) {
  return nb::capsule(new std::shared_ptr<genomed::Client>(std::move(client)), "genomed.client",
                     [](void* p) noexcept { delete static_cast<std::shared_ptr<genomed::Client>*>(p); });
}

// What a lease shows besides its bytes, copied once per load (generation,
// offset) and shared by every lease of it: a load's resident header never
// changes while any lease on it lives (the C++ HeaderCache relies on the same).
struct LeaseMeta {
  explicit LeaseMeta(const genomed::Lease& lease) : config(lease.config()) {
    for (const auto& t : lease.tensors()) {
      tensors.emplace_back(std::string(t.name), std::string(t.dtype),
                           std::vector<std::uint64_t>(t.shape.begin(), t.shape.end()), t.checksum);
    }
    for (const auto& m : lease.modules()) {
      modules.emplace_back(
          std::string(m.path), std::string(genomed::module_kind_name(m.kind)),
          std::string(m.a->name), std::string(m.b->name),
          m.magnitude ? std::optional<std::string>(std::string(m.magnitude->name)) : std::nullopt,
          m.lora_bias ? std::optional<std::string>(std::string(m.lora_bias->name)) : std::nullopt,
          m.rank, m.alpha, m.scaling);
    }
    bias = {lease.bias_tensors().begin(), lease.bias_tensors().end()};
    saved = {lease.saved_module_tensors().begin(), lease.saved_module_tensors().end()};
    other = {lease.other_tensors().begin(), lease.other_tensors().end()};
  }
  genomed::AdapterConfig config;
  std::vector<std::tuple<std::string, std::string, std::vector<std::uint64_t>, std::uint64_t>>
      tensors;  // name, dtype, shape, checksum
  std::vector<std::tuple<std::string, std::string, std::string, std::string,
                         std::optional<std::string>, std::optional<std::string>, std::uint32_t,
                         double, double>>
      modules;  // path, kind, a, b, magnitude, lora_bias, rank, alpha, scaling
  std::vector<std::string> bias, saved, other;
  // The tensor names as Python strings, made at the first views() of the
  // load. Touched only under the GIL.
  mutable nb::object names;
};

// The typed config as the contract's map (docs/protocol.md 8.1).
nb::dict contract_of(const LeaseMeta& meta) {
  const genomed::AdapterConfig& c = meta.config;
  nb::dict d;
  d["config"] = c.json;
  d["peft_type"] = c.peft_type;
  d["r"] = c.r;
  d["lora_alpha"] = c.lora_alpha;
  d["use_rslora"] = c.use_rslora;
  d["use_dora"] = c.use_dora;
  d["fan_in_fan_out"] = c.fan_in_fan_out;
  d["lora_bias"] = c.lora_bias;
  d["bias"] = c.bias;
  d["task_type"] = c.task_type ? nb::cast(*c.task_type) : nb::none();
  d["base_model_name_or_path"] =
      c.base_model_name_or_path ? nb::cast(*c.base_model_name_or_path) : nb::none();
  d["target_modules"] =
      c.target_modules_regex ? nb::cast(*c.target_modules_regex) : nb::cast(c.target_modules);
  d["modules_to_save"] = c.modules_to_save;
  d["layers_to_transform"] = c.layers_to_transform;
  d["layers_pattern"] = c.layers_pattern;
  nb::dict ranks, alphas;
  for (const auto& [k, v] : c.rank_pattern) ranks[nb::cast(k)] = v;
  for (const auto& [k, v] : c.alpha_pattern) alphas[nb::cast(k)] = v;
  d["rank_pattern"] = ranks;
  d["alpha_pattern"] = alphas;
  nb::list modules;
  for (const auto& [path, kind, a, b, mag, bias, rank, alpha, scaling] : meta.modules) {
    nb::dict m;
    m["path"] = path;
    m["kind"] = kind;
    m["a"] = a;
    m["b"] = b;
    m["magnitude"] = mag ? nb::cast(*mag) : nb::none();
    m["lora_bias"] = bias ? nb::cast(*bias) : nb::none();
    m["rank"] = rank;
    m["alpha"] = alpha;
    m["scaling"] = scaling;
    modules.append(m);
  }
  d["modules"] = modules;
  d["bias_tensors"] = meta.bias;
  d["saved_module_tensors"] = meta.saved;
  d["other_tensors"] = meta.other;
  return d;
}

// (generation, offset) -> the metadata of that load, least recently used
// first, 64 entries as the C++ HeaderCache. Used under the GIL only.
class MetaCache {
 public:
  // The cached entry; on a miss a new one if `make`, else null.
  std::shared_ptr<const LeaseMeta> get(const genomed::Lease& lease, std::uint64_t offset,
                                       bool make) {
    const Key key(lease.generation(), offset);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == key) {
        auto hit = it->second;
        entries_.erase(it);
        entries_.emplace_back(key, hit);  // most recently used last
        return hit;
      }
    }
    if (!make) return nullptr;
    auto meta = std::make_shared<const LeaseMeta>(lease);
    entries_.emplace_back(key, meta);
    if (entries_.size() > kEntries) entries_.erase(entries_.begin());
    return meta;
  }

 private:
  using Key = std::pair<std::uint64_t, std::uint64_t>;
  static constexpr std::size_t kEntries = 64;
  std::vector<std::pair<Key, std::shared_ptr<const LeaseMeta>>> entries_;
};

class NativeLease {
 public:
  NativeLease(genomed::Lease&& lease, const std::byte* arena, std::shared_ptr<MetaCache> metas)
      : lease_(std::make_shared<genomed::Lease>(std::move(lease))) {
    name_ = lease_->name();
    auto bytes = lease_->bytes();
    offset_ = static_cast<std::uint64_t>(bytes.data() - arena);
    nbytes_ = bytes.size();
    generation_ = lease_->generation();
    digest_ = lease_->digest();
    id_ = lease_->id();
    // A lease of a load this client saw already shares its metadata; a new
    // load's is copied on first use (the first acquire on a connection then
    // costs what the C++ client's does).
    meta_ = metas->get(*lease_, offset_, /*make=*/false);
    metas_ = std::move(metas);
  }

  // REQUIRES: not released, or meta_ set (release() sets it).
  const LeaseMeta& meta() const {
    if (!meta_) meta_ = metas_->get(*lease_, offset_, /*make=*/true);
    return *meta_;
  }
  nb::dict contract() const { return contract_of(*meta_); }

  // name -> read-only array, in tensor-name order. REQUIRES: not released.
  nb::dict views() {
    const LeasePtr lease = lease_;
    if (!lease) raise(genomed::Status(genomed::Errc::bad_request, "the lease was released"));
    nb::object owner = lease_owner(lease);
    const LeaseMeta& meta = this->meta();
    if (!meta.names.is_valid()) {
      nb::list names;
      for (const auto& t : lease->tensors()) names.append(nb::str(t.name.data(), t.name.size()));
      meta.names = names;
    }
    nb::dict out;
    std::size_t i = 0;
    for (const auto& t : lease->tensors()) {
      int type = numpy_type(t.dtype);
      if (type < 0) {
        raise(genomed::Status(genomed::Errc::layout_invalid,
                              "tensor '" + std::string(t.name) + "': dtype " +
                                  std::string(t.dtype) + " has no numpy view"));
      }
      PyObject* key = PyList_GET_ITEM(meta.names.ptr(), static_cast<Py_ssize_t>(i++));
      if (PyDict_SetItem(out.ptr(), key,
                         array_view(type, t.shape, t.data.data(), owner.ptr()).ptr()) != 0) {
        throw nb::python_error();
      }
    }
    return out;
  }

  // Raises LayoutError (layout_invalid) naming the first tensor that differs.
  void verify() {
    const LeasePtr lease = lease_;
    if (!lease) raise(genomed::Status(genomed::Errc::bad_request, "the lease was released"));
    genomed::Status s;
    {
      nb::gil_scoped_release nogil;  // reads every byte of the adapter
      s = lease->verify();
    }
    if (!s.ok()) raise(s);
  }

  // Drops this object's reference: the lease ends now, or when the last
  // array of it is collected. Idempotent.
  void release() {
    if (lease_) (void)meta();  // metadata stays readable after release
    LeasePtr lease = std::move(lease_);
    nb::gil_scoped_release nogil;
    lease.reset();
  }

  bool released() const { return !lease_; }

  std::string name_, digest_;
  std::uint64_t id_ = 0, generation_ = 0, offset_ = 0, nbytes_ = 0;

 private:
  LeasePtr lease_;  // null once released
  mutable std::shared_ptr<const LeaseMeta> meta_;  // null until first needed; set once released
  std::shared_ptr<MetaCache> metas_;  // the client's (a lease may outlive its client)
};

class NativeClient {
 public:
  explicit NativeClient(genomed::Client&& c)
      : client_(std::make_shared<genomed::Client>(std::move(c))) {}

  static NativeClient connect(const std::string& path, const std::string& client_name,
                              std::optional<double> connect_timeout,
                              std::optional<double> request_timeout,
                              std::optional<double> load_timeout) {
    genomed::ClientOptions o;
    o.client_name = client_name;
    o.connect_timeout = option_ms(connect_timeout);
    o.request_timeout = option_ms(request_timeout);
    o.load_timeout = option_ms(load_timeout);
    o.interrupted = interrupted_by_signal;
    genomed::Result<genomed::Client> r = genomed::Status(genomed::Errc::internal, "");
    {
      nb::gil_scoped_release nogil;
      r = genomed::Client::connect(path, o);
    }
    return NativeClient(take(std::move(r)));
  }

  std::vector<NativeLease> acquire(const std::vector<std::string>& names,
                                   std::optional<double> timeout,
                                   std::optional<std::int64_t> keep_alive_ms, int priority) {
    auto c = live();
    genomed::Result<std::vector<genomed::Lease>> r = genomed::Status(genomed::Errc::internal, "");
    {
      nb::gil_scoped_release nogil;
      r = c->acquire(names, load_options(keep_alive_ms, priority), timeout_of(timeout));
    }
    auto leases = take(std::move(r), c.get());
    const std::byte* arena = c->arena().data();
    std::vector<NativeLease> out;
    out.reserve(leases.size());
    for (auto& l : leases) out.emplace_back(std::move(l), arena, metas_);
    return out;
  }

  // One name, the per-request path of Client.acquire: a single object back,
  // not a vector converted to a list of one (bench/python_bench.py --hot).
  NativeLease acquire_one(const std::string& name, std::optional<double> timeout,
                          std::optional<std::int64_t> keep_alive_ms, int priority) {
    auto c = live();
    const genomed::LoadOptions options = load_options(keep_alive_ms, priority);
    genomed::Result<std::vector<genomed::Lease>> r = genomed::Status(genomed::Errc::internal, "");
    {
      nb::gil_scoped_release nogil;  // a cold load or a busy connection waits
      r = c->acquire(std::vector<std::string>{name}, options, timeout_of(timeout));
    }
    auto leases = take(std::move(r), c.get());
    return NativeLease(std::move(leases.front()), c->arena().data(), metas_);
  }

  // Runs `call` on the client without the GIL and returns its value or raises.
  template <class F>
  auto wait(F&& call) {
    auto c = live();
    decltype(call(*c)) r = genomed::Status(genomed::Errc::internal, "");
    {
      nb::gil_scoped_release nogil;
      r = call(*c);
    }
    return take(std::move(r), c.get());
  }

  nb::object arena() {
    auto c = live();
    auto span = c->arena();
    std::uint64_t n = span.size();
    nb::object owner = client_owner(c);
    return array_view(NPY_UINT8, std::span<const std::uint64_t>(&n, 1), span.data(), owner.ptr());
  }

  bool broken() const { return client_ ? client_->broken() : true; }
  void close() { client_.reset(); }  // leases keep the connection open meanwhile

  std::uint64_t arena_bytes() const { return arena_bytes_ ? arena_bytes_ : (arena_bytes_ = live()->arena_bytes()); }
  std::uint64_t daemon_pid() const { return live()->daemon_pid(); }
  std::string server() const { return live()->server(); }

 private:
  std::shared_ptr<MetaCache> metas_ = std::make_shared<MetaCache>();

  std::shared_ptr<genomed::Client> live() const {
    if (!client_) raise(genomed::Status(genomed::Errc::not_connected, "the client is closed"));
    return client_;
  }
  std::shared_ptr<genomed::Client> client_;  // null after close()
  mutable std::uint64_t arena_bytes_ = 0;
};

nb::tuple load_tuple(const genomed::LoadInfo& i) {
  return nb::make_tuple(i.name, i.bytes, i.generation, i.was_resident, i.digest);
}
nb::tuple reload_tuple(const genomed::ReloadInfo& i) {  // RELOAD and PUBLISH
  return nb::make_tuple(i.name, i.bytes, i.generation, i.digest, i.previous_generation,
                        i.previous_digest, i.previous_leases);
}
nb::tuple pin_tuple(const genomed::PinInfo& i) {
  return nb::make_tuple(i.name, i.bytes, i.generation, i.pinned, i.was_pinned, i.digest);
}

}  // namespace

NB_MODULE(_native, m) {
  m.doc() = "genomed's C++ client library (include/genomed/client.h), bound with nanobind";
  if (_import_array() < 0) throw nb::python_error();

  m.def("set_error_factory", [](nb::object make, nb::object timeout_error) {
    Py_XDECREF(g_error_factory);
    Py_XDECREF(g_timeout_factory);
    g_error_factory = make.release().ptr();
    g_timeout_factory = timeout_error.release().ptr();
  });

  nb::class_<NativeLease>(m, "NativeLease")
      .def_ro("name", &NativeLease::name_)
      .def_ro("id", &NativeLease::id_)
      .def_ro("generation", &NativeLease::generation_)
      .def_ro("digest", &NativeLease::digest_)
      .def_ro("offset", &NativeLease::offset_)
      .def_ro("nbytes", &NativeLease::nbytes_)
      .def_prop_ro("tensor_info", [](const NativeLease& l) { return l.meta().tensors; })
      .def_prop_ro("module_info", [](const NativeLease& l) { return l.meta().modules; })
      .def_prop_ro("config_json", [](const NativeLease& l) { return l.meta().config.json; })
      .def_prop_ro("lora_r", [](const NativeLease& l) { return l.meta().config.r; })
      .def_prop_ro("lora_alpha", [](const NativeLease& l) { return l.meta().config.lora_alpha; })
      .def_prop_ro("bias_tensors", [](const NativeLease& l) { return l.meta().bias; })
      .def_prop_ro("saved_module_tensors", [](const NativeLease& l) { return l.meta().saved; })
      .def_prop_ro("other_tensors", [](const NativeLease& l) { return l.meta().other; })
      .def_prop_ro("meta_id", [](const NativeLease& l) {
        return reinterpret_cast<std::uintptr_t>(&l.meta());
      })
      .def("contract", &NativeLease::contract)
      .def_prop_ro("released", &NativeLease::released)
      .def("views", &NativeLease::views)
      .def("verify", &NativeLease::verify)
      .def("release", &NativeLease::release);

  nb::class_<NativeClient>(m, "NativeClient")
      .def_static("connect", &NativeClient::connect, "path"_a, "client_name"_a,
                  "connect_timeout"_a.none(), "request_timeout"_a.none(),
                  "load_timeout"_a.none())
      .def("acquire", &NativeClient::acquire, "names"_a, "timeout"_a.none(),
           "keep_alive_ms"_a.none(), "priority"_a)
      .def("acquire_one", &NativeClient::acquire_one, "name"_a, "timeout"_a.none(),
           "keep_alive_ms"_a.none(), "priority"_a)
      .def("load",
           [](NativeClient& self, const std::string& name, std::optional<double> timeout,
              std::optional<std::int64_t> keep_alive_ms, int priority) {
             auto o = load_options(keep_alive_ms, priority);
             return load_tuple(self.wait([&](genomed::Client& c) {
               return c.load(name, o, timeout_of(timeout));
             }));
           },
           "name"_a, "timeout"_a.none(), "keep_alive_ms"_a.none(), "priority"_a)
      .def("prefetch",
           [](NativeClient& self, const std::string& name, std::optional<double> timeout) {
             return load_tuple(self.wait(
                 [&](genomed::Client& c) { return c.prefetch(name, timeout_of(timeout)); }));
           },
           "name"_a, "timeout"_a.none())
      .def("reload",
           [](NativeClient& self, const std::string& name, std::optional<double> timeout) {
             return reload_tuple(self.wait(
                 [&](genomed::Client& c) { return c.reload(name, timeout_of(timeout)); }));
           },
           "name"_a, "timeout"_a.none())
      // PUBLISH from two sealed memfds the caller made (genomed/_publish.py).
      .def("publish_fds",
           [](NativeClient& self, const std::string& name, int config_fd, int weights_fd,
              std::optional<double> timeout) {
             return reload_tuple(self.wait([&](genomed::Client& c) {
               return c.publish_fds(name, config_fd, weights_fd, timeout_of(timeout));
             }));
           },
           "name"_a, "config_fd"_a, "weights_fd"_a, "timeout"_a.none())
      .def("unload",
           [](NativeClient& self, const std::string& name, std::optional<double> timeout) {
             auto i = self.wait(
                 [&](genomed::Client& c) { return c.unload(name, timeout_of(timeout)); });
             return nb::make_tuple(i.name, i.outcome, i.leases);
           },
           "name"_a, "timeout"_a.none())
      .def("pin",
           [](NativeClient& self, const std::string& name, std::optional<double> timeout,
              std::optional<std::int64_t> keep_alive_ms, int priority) {
             auto o = load_options(keep_alive_ms, priority);
             return pin_tuple(self.wait(
                 [&](genomed::Client& c) { return c.pin(name, o, timeout_of(timeout)); }));
           },
           "name"_a, "timeout"_a.none(), "keep_alive_ms"_a.none(), "priority"_a)
      .def("unpin",
           [](NativeClient& self, const std::string& name, std::optional<double> timeout) {
             return pin_tuple(self.wait(
                 [&](genomed::Client& c) { return c.unpin(name, timeout_of(timeout)); }));
           },
           "name"_a, "timeout"_a.none())
      .def("list",
           [](NativeClient& self, std::optional<double> timeout) {
             auto all = self.wait([&](genomed::Client& c) { return c.list(timeout_of(timeout)); });
             nb::list out;
             for (const auto& a : all) {
               out.append(nb::make_tuple(a.name, a.state, a.bytes, a.leases, a.generation,
                                         a.pinned, a.idle_ms,
                                         a.expires_in_ms ? nb::cast(*a.expires_in_ms) : nb::none(),
                                         a.fill_total, a.filled, a.digest));
             }
             return out;
           },
           "timeout"_a.none())
      .def("stats",
           [](NativeClient& self, std::optional<double> timeout) {
             auto all = self.wait([&](genomed::Client& c) { return c.stats(timeout_of(timeout)); });
             nb::dict out;
             for (const auto& [key, value] : all) {
               if (const auto* n = std::get_if<std::uint64_t>(&value)) {
                 out[nb::cast(key)] = nb::cast(*n);
               } else {
                 out[nb::cast(key)] = nb::cast(std::get<std::string>(value));
               }
             }
             return out;
           },
           "timeout"_a.none())
      .def("health",
           [](NativeClient& self, std::optional<double> timeout) {
             auto h = self.wait([&](genomed::Client& c) { return c.health(timeout_of(timeout)); });
             return nb::make_tuple(h.healthy, h.reason, h.saturated);
           },
           "timeout"_a.none())
      .def("arena", &NativeClient::arena)
      .def_prop_ro("broken", &NativeClient::broken)
      .def_prop_ro("arena_bytes", &NativeClient::arena_bytes)
      .def_prop_ro("daemon_pid", &NativeClient::daemon_pid)
      .def_prop_ro("server", &NativeClient::server)
      .def("close", &NativeClient::close);
}
