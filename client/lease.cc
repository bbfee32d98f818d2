// Lease: one lease on one resident adapter, its views into the arena, and
// its release (through its lease slot, or a one-way RELEASE).
#include <algorithm>

#include "client/connection.h"
#include "genomed/client.h"
#include "layout/tensor_checksum.h"

namespace genomed {

using client_detail::LeaseState;

Lease::Lease(std::unique_ptr<LeaseState> state) : state_(std::move(state)) {
  state_->conn->transport->lease_taken();
}
Lease::Lease(Lease&&) noexcept = default;
Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
  }
  return *this;
}
Lease::~Lease() { release(); }

void Lease::release() {
  if (!state_ || state_->released) return;
  state_->released = true;
  if (state_->conn->foreign()) return;  // the parent's lease: it stays held
  if (state_->slot)
    state_->conn->give_back(*state_->slot, state_->slot_tag, state_->id);
  else
    state_->conn->release(state_->id);
  state_->conn->transport->lease_ended();  // after its RELEASE went out
}

const std::string& Lease::name() const { return state_->name; }
std::uint64_t Lease::id() const { return state_->id; }
std::uint64_t Lease::generation() const { return state_->generation; }
const std::string& Lease::digest() const { return state_->adapter->digest; }
std::uint32_t Lease::lora_rank() const { return state_->adapter->layout.lora_r; }
double Lease::lora_alpha() const { return state_->adapter->layout.lora_alpha; }
const AdapterConfig& Lease::config() const { return state_->adapter->contract.config; }
std::span<const LoraModule> Lease::modules() const {
  if (state_->released) return {};
  return state_->adapter->modules;
}
std::span<const std::string> Lease::bias_tensors() const {
  return state_->adapter->contract.bias_tensors;
}
std::span<const std::string> Lease::saved_module_tensors() const {
  return state_->adapter->contract.saved_module_tensors;
}
std::span<const std::string> Lease::other_tensors() const {
  return state_->adapter->contract.other_tensors;
}
// A released lease shows no views: the daemon may reuse that memory.
std::span<const TensorView> Lease::tensors() const {
  if (state_->released) return {};
  return state_->adapter->views;
}
std::span<const std::byte> Lease::bytes() const {
  if (state_->released) return {};
  return state_->adapter->bytes;
}

Status Lease::verify(ChecksumMismatch* mismatch) const {
  if (state_->released) {
    return Status(Errc::bad_request, "lease " + std::to_string(state_->id) + " on '" +
                                         state_->name + "' was released: nothing left to verify");
  }
  const layout::ResidentLayout& layout = state_->adapter->layout;
  layout::TensorMismatch bad;
  const Status checked = layout::verify_checksums(layout, state_->adapter->bytes, &bad);
  if (checked.ok()) return checked;
  if (mismatch != nullptr) {
    *mismatch = {layout.tensors[bad.index].name, layout.tensors[bad.index].checksum, bad.actual};
  }
  return Status(checked.code(), "adapter '" + state_->name + "' (generation " +
                                    std::to_string(state_->generation) + "): " + checked.message());
}

const TensorView* Lease::find(std::string_view tensor_name) const {
  const auto v = tensors();
  auto it = std::lower_bound(v.begin(), v.end(), tensor_name,
                             [](const TensorView& t, std::string_view n) { return t.name < n; });
  return it != v.end() && it->name == tensor_name ? &*it : nullptr;
}

}  // namespace genomed
