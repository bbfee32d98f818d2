// The client's parsed resident headers: the tensor table of a resident copy,
// validated and parsed once, then shared by every lease on that copy.
//
// A copy is keyed by (generation, offset, length): a grant with the same key
// names the same bytes, unchanged (a generation is one load, and memory under
// a lease is never reused while a lease holds it), so a repeat grant skips
// the parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <vector>

#include "common/mutex.h"
#include "genomed/client.h"
#include "genomed/result.h"
#include "layout/contract.h"
#include "layout/resident_layout.h"

namespace genomed::client_detail {

// A validated resident header and the views into the arena it describes.
struct ParsedAdapter {
  std::span<const std::byte> bytes;
  layout::ResidentLayout layout;     // owns the names and shapes the views point at
  layout::AdapterContract contract;  // owns the config and the module paths
  std::vector<TensorView> views;     // built once, never resized: modules point into it
  std::vector<LoraModule> modules;
  std::string digest;  // layout::content_digest(layout).hex()
};

// Which bytes of the arena a grant names.
struct CopyKey {
  std::uint64_t generation = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool operator==(const CopyKey&) const = default;
};

// Validates the range [offset, offset + length) against `arena` and the
// resident header in it against the range, then builds the views, so a
// corrupt grant cannot make the client read outside its mapping.
// Errc::layout_invalid (the message says why, without the adapter's name).
Result<std::shared_ptr<const ParsedAdapter>> parse_adapter(std::span<const std::byte> arena,
                                                           std::uint64_t offset,
                                                           std::uint64_t length);

class HeaderCache {
 public:
  static constexpr std::size_t kEntries = 64;  // python/genomed/_client.py keeps as many

  // The copy under `key`, most recent first from now on; nullptr on a miss.
  std::shared_ptr<const ParsedAdapter> find(const CopyKey& key) EXCLUDES(mu_);
  // Adds `adapter` as the most recent, forgetting the least recent past kEntries.
  void remember(const CopyKey& key, std::shared_ptr<const ParsedAdapter> adapter) EXCLUDES(mu_);

 private:
  struct Entry {
    CopyKey key;
    std::shared_ptr<const ParsedAdapter> adapter;
  };
  Mutex mu_;  // leases are built by several threads at once
  std::list<Entry> entries_ GUARDED_BY(mu_);  // most recent first; at most kEntries
};

}  // namespace genomed::client_detail
