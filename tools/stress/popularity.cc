#include "tools/stress/popularity.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace genomed::stress {

Popularity::Popularity(std::size_t n, double zipf, std::uint64_t seed) : order_(n) {
  std::iota(order_.begin(), order_.end(), std::size_t{0});
  std::mt19937_64 rng(seed ^ 0x5eed5eedull);
  std::shuffle(order_.begin(), order_.end(), rng);
  if (zipf <= 0) return;
  double total = 0;
  for (std::size_t k = 1; k <= n; ++k) {
    total += 1.0 / std::pow(static_cast<double>(k), zipf);
    cdf_.push_back(total);
  }
  for (double& c : cdf_) c /= total;
}

std::size_t Popularity::pick(std::mt19937_64& rng) const {
  if (cdf_.empty()) return order_[std::uniform_int_distribution<std::size_t>(0, order_.size() - 1)(rng)];
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  const auto rank = std::min<std::size_t>(static_cast<std::size_t>(it - cdf_.begin()), order_.size() - 1);
  return order_[rank];
}

}  // namespace genomed::stress
