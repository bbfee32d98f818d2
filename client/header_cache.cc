#include "client/header_cache.h"

#include <algorithm>
#include <string>

#include "layout/content_digest.h"
#include "layout/dtype.h"

namespace genomed::client_detail {

Result<std::shared_ptr<const ParsedAdapter>> parse_adapter(std::span<const std::byte> arena,
                                                           std::uint64_t offset,
                                                           std::uint64_t length) {
  if (offset > arena.size() || length > arena.size() - offset) {
    return Status(Errc::layout_invalid, "the granted range lies outside the arena");
  }
  auto adapter = std::make_shared<ParsedAdapter>();
  adapter->bytes = arena.subspan(offset, length);
  auto layout = layout::read_layout_header(adapter->bytes, &adapter->contract);
  if (!layout) return Status(Errc::layout_invalid, layout.status().message());
  adapter->layout = std::move(layout).value();
  adapter->digest = layout::content_digest(adapter->layout).hex();
  adapter->views.reserve(adapter->layout.tensors.size());
  for (const auto& t : adapter->layout.tensors) {
    TensorView v;
    v.name = t.name;
    v.dtype = layout::dtype_name(t.dtype);
    v.element_size = layout::dtype_size(t.dtype);
    v.shape = t.shape;
    v.data = adapter->bytes.subspan(t.offset, t.length);
    v.checksum = t.checksum;
    adapter->views.push_back(v);
  }
  // read_layout_header checked that every tensor the contract names exists.
  const auto view = [&](const std::string& name) -> const TensorView* {
    auto it =
        std::lower_bound(adapter->views.begin(), adapter->views.end(), name,
                         [](const TensorView& t, const std::string& n) { return t.name < n; });
    return it != adapter->views.end() && it->name == name ? &*it : nullptr;
  };
  adapter->modules.reserve(adapter->contract.modules.size());
  for (const layout::ContractModule& m : adapter->contract.modules) {
    LoraModule lm;
    lm.path = m.path;
    lm.kind = m.kind;
    lm.a = view(m.a);
    lm.b = view(m.b);
    lm.magnitude = m.magnitude ? view(*m.magnitude) : nullptr;
    lm.lora_bias = m.lora_bias ? view(*m.lora_bias) : nullptr;
    lm.rank = m.rank;
    lm.alpha = m.alpha;
    lm.scaling = m.scaling;
    adapter->modules.push_back(lm);
  }
  return std::shared_ptr<const ParsedAdapter>(std::move(adapter));
}

std::shared_ptr<const ParsedAdapter> HeaderCache::find(const CopyKey& key) {
  MutexLock lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->key == key) {
      entries_.splice(entries_.begin(), entries_, it);  // most recent first
      return it->adapter;
    }
  }
  return nullptr;
}

void HeaderCache::remember(const CopyKey& key, std::shared_ptr<const ParsedAdapter> adapter) {
  MutexLock lock(mu_);
  entries_.push_front({key, std::move(adapter)});
  if (entries_.size() > kEntries) entries_.pop_back();
}

}  // namespace genomed::client_detail
