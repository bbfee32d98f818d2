#include "tools/stress/verifier.h"

#include <algorithm>
#include <cstdio>

#include "tools/stress/digest.h"

namespace genomed::stress {
namespace {

std::string hex(std::uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

bool Verifier::check(const Lease& lease, const std::string& requested, std::mt19937_64& rng,
                     bool force_full) const {
  const bool full = force_full || options_.verify == VerifyMode::full;
  const auto wrong = [&](const std::string& why) {
    tally_.fail(Failure::wrong_bytes, "adapter " + requested + " (generation " +
                                          std::to_string(lease.generation()) + "): " + why);
    return false;
  };
  if (lease.name() != requested) return wrong("the lease names '" + lease.name() + "'");
  const AdapterTruth* truth = corpus_.find(requested);
  if (truth == nullptr) return true;  // not an adapter the harness knows (never asked for)

  const auto tensors = lease.tensors();
  std::vector<const TensorView*> chosen;
  for (const auto& t : tensors) chosen.push_back(&t);
  if (!full &&
      chosen.size() > static_cast<std::size_t>(options_.sample_tensors)) {
    std::shuffle(chosen.begin(), chosen.end(), rng);
    chosen.resize(static_cast<std::size_t>(options_.sample_tensors));
  }
  // Versions still consistent with every tensor checked so far.
  std::vector<bool> possible(truth->versions.size(), true);
  std::string last_mismatch;
  std::uint64_t bytes = 0;
  for (const TensorView* t : chosen) {
    const std::string name(t->name);
    const std::uint64_t actual = digest(t->data);
    bytes += t->data.size();
    for (std::size_t v = 0; v < truth->versions.size(); ++v) {
      if (!possible[v]) continue;
      const auto it = truth->versions[v].find(name);
      if (it == truth->versions[v].end()) {
        possible[v] = false;
        last_mismatch = "tensor " + name + " is not in the file";
        continue;
      }
      const TensorTruth& want = it->second;
      const bool same_shape = std::equal(t->shape.begin(), t->shape.end(), want.shape.begin(),
                                         want.shape.end());
      if (t->dtype != want.dtype || !same_shape || t->data.size() != want.size) {
        possible[v] = false;
        last_mismatch = "tensor " + name + ": dtype/shape/size " + std::string(t->dtype) + "/" +
                        std::to_string(t->data.size()) + " bytes differ from the file's " +
                        want.dtype + "/" + std::to_string(want.size) + " bytes";
      } else if (actual != want.digest) {
        possible[v] = false;
        last_mismatch = "tensor " + name + ": digest " + hex(actual) + " of its bytes, the file's " +
                        hex(want.digest);
      }
    }
  }
  tally_.tensors_verified.fetch_add(chosen.size(), std::memory_order_relaxed);
  tally_.bytes_verified.fetch_add(bytes, std::memory_order_relaxed);
  tally_.leases_verified.fetch_add(1, std::memory_order_relaxed);
  const auto matching = std::count(possible.begin(), possible.end(), true);
  if (matching == 0) {
    return wrong(truth->versions.size() > 1
                     ? "matches none of its " + std::to_string(truth->versions.size()) +
                           " versions (last difference: " + last_mismatch + ")"
                     : last_mismatch);
  }
  if (full) {
    bool count_matches = false;
    for (std::size_t v = 0; v < truth->versions.size(); ++v)
      count_matches |= possible[v] && truth->versions[v].size() == tensors.size();
    if (!count_matches)
      return wrong("holds " + std::to_string(tensors.size()) + " tensors, the file " +
                   std::to_string(truth->versions[0].size()));
  }
  return true;
}

}  // namespace genomed::stress
