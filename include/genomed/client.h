// The genomed client library: connect to the daemon, acquire adapters, and
// read their tensors straight from the daemon's shared memory.
//
//   auto client = genomed::Client::connect("/run/genomed.sock");
//   auto lease = client->acquire("my-adapter");   // loads it if needed
//   for (const auto& t : lease->tensors()) use(t.name, t.shape, t.data);
//   // ~Lease releases it; the daemon may then evict it under pressure.
//
// Views are zero-copy and read-only: `TensorView::data` points into the
// arena the daemon passed as an O_RDONLY descriptor and this process mapped
// once, PROT_READ. A view is valid while its Lease lives; the daemon never
// reuses memory under a live lease. A Client (and its leases) may be used
// from several threads: requests on one connection are serialized, and a
// release (one-way) is written between them without waiting for a pending
// request's reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "genomed/adapter.h"
#include "genomed/result.h"
#include "genomed/types.h"

namespace genomed {

struct TensorView {
  std::string_view name;
  std::string_view dtype;          // safetensors dtype name: "F16", "BF16", ...
  std::uint32_t element_size = 0;  // bytes per element
  std::span<const std::uint64_t> shape;
  std::span<const std::byte> data;  // in the read-only arena
};

// One LoRA module of a leased adapter, with the factors PEFT applies:
// output += scaling * B(A(x)) (DoRA: see PEFT's dora.py for how the magnitude
// rescales it). Tensor pointers point into the lease's views.
struct LoraModule {
  std::string_view path;  // in the base model, e.g. "model.layers.0.self_attn.q_proj"
  ModuleKind kind = ModuleKind::linear;
  const TensorView* a = nullptr;          // [rank, in] (embedding: [rank, num_embeddings])
  const TensorView* b = nullptr;          // [out, rank] (embedding: [embedding_dim, rank])
  const TensorView* magnitude = nullptr;  // DoRA's magnitude vector; nullptr unless use_dora
  const TensorView* lora_bias = nullptr;  // B's bias; nullptr unless lora_bias
  std::uint32_t rank = 0;                 // effective rank (rank_pattern, else r)
  double alpha = 0;                       // effective alpha (alpha_pattern, else lora_alpha)
  double scaling = 0;                     // alpha / rank, or alpha / sqrt(rank) with use_rslora
};

namespace client_detail {
struct Connection;
struct LeaseState;
}  // namespace client_detail

// One lease on one resident adapter. Move-only; the destructor releases it.
class Lease {
 public:
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  ~Lease();

  const std::string& name() const;
  std::uint64_t id() const;
  std::uint64_t generation() const;  // which load of `name` this copy is
  std::uint32_t lora_rank() const;   // config().r
  double lora_alpha() const;         // config().lora_alpha
  // The validated adapter_config.json: typed fields and the whole file as
  // JSON (config().json). Valid while the Lease lives, released or not.
  const AdapterConfig& config() const;
  // Every LoRA module, sorted by path. Empty after release().
  std::span<const LoraModule> modules() const;
  // Tensors outside the modules, by name: base-layer biases the adapter
  // trains (bias != "none"), weights of modules_to_save, and tensors no rule
  // explains (listed, never refused).
  std::span<const std::string> bias_tensors() const;
  std::span<const std::string> saved_module_tensors() const;
  std::span<const std::string> other_tensors() const;
  // Sorted by tensor name.
  std::span<const TensorView> tensors() const;
  // nullptr if the adapter has no tensor of that name.
  const TensorView* find(std::string_view tensor_name) const;
  // The adapter's whole resident range (header and tensors).
  std::span<const std::byte> bytes() const;

  // Releases now instead of at destruction. Idempotent, and never waits for
  // another thread's request on the same Client. Afterwards tensors(),
  // modules() and bytes() are empty and find() returns nullptr: the daemon
  // may reuse the memory, so views taken before must not be used either.
  void release();

 private:
  friend class Client;
  explicit Lease(std::unique_ptr<client_detail::LeaseState> state);
  std::unique_ptr<client_detail::LeaseState> state_;
};

class Client {
 public:
  // Connects, exchanges HELLO, receives the arena descriptor and maps it
  // read-only. Errc::not_connected if no daemon listens at `socket_path`.
  static Result<Client> connect(const std::string& socket_path,
                                const std::string& client_name = "libgenomed");

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Makes `name` resident (loading it if needed) and leases it.
  Result<Lease> acquire(std::string_view name);
  // Several adapters in one round trip; all or nothing.
  Result<std::vector<Lease>> acquire(const std::vector<std::string>& names);

  Result<LoadInfo> load(std::string_view name);
  Result<UnloadInfo> unload(std::string_view name);
  Result<std::vector<AdapterInfo>> list();
  Result<Stats> stats();
  Result<Health> health();

  std::uint64_t arena_bytes() const;
  std::uint64_t daemon_pid() const;

 private:
  explicit Client(std::shared_ptr<client_detail::Connection> conn);
  std::shared_ptr<client_detail::Connection> conn_;
};

}  // namespace genomed
