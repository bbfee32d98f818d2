// Which adapter a client asks for next: uniform, or Zipf with exponent S
// (the k-th most popular drawn with weight 1/k^S) over a seeded shuffle of
// the adapters, so the hot set depends on --seed and not on names.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace genomed::stress {

class Popularity {
 public:
  Popularity(std::size_t n, double zipf, std::uint64_t seed);
  std::size_t pick(std::mt19937_64& rng) const;

 private:
  std::vector<std::size_t> order_;  // rank -> index
  std::vector<double> cdf_;         // empty: uniform
};

}  // namespace genomed::stress
