// Checks a lease against the files: every tensor (--verify full) or a random
// few (--verify sample) must have the file's dtype, shape, size and digest,
// and all of one lease must match one version of the adapter (an adapter
// replaced mid-run may show either version, never a mix). With full
// verification the lease must also hold exactly the file's tensors.
#pragma once

#include <random>
#include <string>

#include "genomed/client.h"
#include "tools/stress/corpus.h"
#include "tools/stress/options.h"
#include "tools/stress/tally.h"

namespace genomed::stress {

class Verifier {
 public:
  Verifier(const Corpus& corpus, const Options& options, Tally& tally)
      : corpus_(corpus), options_(options), tally_(tally) {}

  // Checks `lease` (acquired as `requested`); a mismatch is recorded as a
  // wrong_bytes failure naming the adapter and tensor. False on a mismatch.
  bool check(const Lease& lease, const std::string& requested, std::mt19937_64& rng,
             bool force_full = false) const;

 private:
  const Corpus& corpus_;
  const Options& options_;
  Tally& tally_;
};

}  // namespace genomed::stress
