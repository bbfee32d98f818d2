// What the files say: per adapter, per tensor, the dtype, shape, size and
// digest, computed by the harness from adapter_model.safetensors once, with
// its own small safetensors reader (an oracle independent of the worker's
// parser). An adapter whose files the harness replaces during the run has
// several versions; a lease must match one of them in every tensor.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::stress {

struct TensorTruth {
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t size = 0;
  std::uint64_t digest = 0;
};

// One version of an adapter's weights: tensor name -> truth.
using VersionTruth = std::map<std::string, TensorTruth>;

struct AdapterTruth {
  std::string name;
  std::vector<VersionTruth> versions;  // one, or several for a replaced adapter
  std::vector<std::string> version_files;  // replace-files: the prepared weights of each version
};

// Reads a safetensors file and digests every tensor.
Result<VersionTruth> read_truth(const std::string& weights_path);

class Corpus {
 public:
  void add_good(AdapterTruth truth) { good_.push_back(std::move(truth)); }
  void add_bad(std::string name) { bad_.push_back(std::move(name)); }

  const std::vector<AdapterTruth>& good() const { return good_; }
  const std::vector<std::string>& bad() const { return bad_; }
  const AdapterTruth* find(const std::string& name) const;
  std::uint64_t largest_version_bytes() const;

 private:
  std::vector<AdapterTruth> good_;
  std::vector<std::string> bad_;  // adapters that must be refused (--bad-root)
};

}  // namespace genomed::stress
