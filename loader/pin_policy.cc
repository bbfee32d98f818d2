#include "loader/pin_policy.h"

#include "cache/check.h"
#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/client_log.h"

namespace genomed::loader {

Result<bool> PinPolicy::pin(const std::string& name) {
  const auto view = cache_.find(name);
  if (view->pinned) return true;
  // A copy another pinned name shares costs nothing more (cache/shared_copies.h).
  const std::uint64_t cost = cache_.pin_cost(name);
  if (cache_.bytes_pinned() + cost > budget_) {
    return Status(Errc::pin_budget_exceeded,
                  "pinning " + quote(name) + " (" + format_size(view->footprint) +
                      ") would pin " + format_size(cache_.bytes_pinned() + cost) +
                      " but the pin budget is " + format_size(budget_) + " (" +
                      std::to_string(cache_.pinned_count()) +
                      " adapter(s) pinned already): unpin one first, or raise --pin-budget; " +
                      quote(name) + " stays resident, unpinned");
  }
  cache_.set_pinned(name, true);
  client_log().info("pinned {} ({}; {} pinned in all)", quote(name), format_size(view->footprint),
                    format_size(cache_.bytes_pinned()));
  return false;
}

bool PinPolicy::unpin(const std::string& name) {
  const bool was = cache_.set_pinned(name, false);
  if (was) client_log().info("unpinned {}", quote(name));
  return was;
}

void PinPolicy::check_invariants() const {
  GENOMED_CHECK(cache_.bytes_pinned() <= budget_, "the pinned adapters pass the pin budget");
}

}  // namespace genomed::loader
