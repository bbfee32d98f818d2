#include "loader/adapter_table.h"

#include "cache/check.h"

namespace genomed::loader {

const char* state_name(AdapterState s) {
  switch (s) {
    case AdapterState::loading:
      return "loading";
    case AdapterState::ready:
      return "ready";
    case AdapterState::draining:
      return "draining";
  }
  return "unknown";
}

void AdapterTable::start_loading(const std::string& name, const std::shared_ptr<Flight>& flight) {
  flight->generation = next_generation_++;
  entries_[name] = AdapterEntry{AdapterState::loading, flight->generation, flight};
}

AdapterTable::iterator AdapterTable::rename(const std::string& from, const std::string& to) {
  auto node = entries_.extract(from);
  GENOMED_CHECK(!node.empty(), "rename of an absent adapter entry");
  node.key() = to;
  auto [it, inserted, rest] = entries_.insert(std::move(node));
  GENOMED_CHECK(inserted, "rename onto an existing adapter entry");
  return it;
}

std::size_t AdapterTable::loading() const {
  std::size_t n = 0;
  for (const auto& [name, e] : entries_) n += e.state == AdapterState::loading ? 1 : 0;
  return n;
}

void AdapterTable::check_invariants(const cache::ResidentCache& cache) const {
  std::size_t resident = 0;
  for (const auto& [name, e] : entries_) {
    const bool in_cache = cache.find(name).has_value();
    GENOMED_CHECK(in_cache == (e.state != AdapterState::loading),
                  "an entry's state disagrees with the cache");
    GENOMED_CHECK((e.state == AdapterState::loading) == (e.flight != nullptr),
                  "a flight on a settled entry");
    GENOMED_CHECK(!e.flight || e.flight->phase == Flight::Phase::running,
                  "a LOADING entry whose flight is decided");
    resident += in_cache ? 1 : 0;
  }
  GENOMED_CHECK(resident == cache.entry_count(), "the cache holds an adapter with no entry");
}

}  // namespace genomed::loader
