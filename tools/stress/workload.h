// The workload: --clients threads, each with its own connection, drawing
// operations from --mix and adapters from the popularity distribution,
// holding leases for --hold-ms, verifying every lease, and counting every
// outcome. Runs until stop() or until --ops operations have been started.
#pragma once

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "genomed/client.h"
#include "tools/stress/corpus.h"
#include "tools/stress/error_policy.h"
#include "tools/stress/invariants.h"
#include "tools/stress/options.h"
#include "tools/stress/popularity.h"
#include "tools/stress/tally.h"
#include "tools/stress/verifier.h"

namespace genomed::stress {

class Workload {
 public:
  Workload(const Options& options, const std::string& socket, const Corpus& corpus,
           const Verifier& verifier, const ErrorPolicy& policy, Invariants& invariants,
           Tally& tally);
  ~Workload();

  void start();
  void stop() { stop_.store(true); }
  // True once every client thread has finished (the --ops budget is spent).
  bool done() const { return running_.load() == 0; }
  void join();

 private:
  void client_loop(int index);
  bool take_op();
  Op pick_op(std::mt19937_64& rng) const;
  // Performs one operation; true if the client must reconnect.
  bool perform(Op op, Client& client, std::mt19937_64& rng);
  bool acquire_one(Client& client, std::mt19937_64& rng);
  bool acquire_batch(Client& client, std::mt19937_64& rng);
  void hold(std::mt19937_64& rng) const;
  // One call of LOAD, UNLOAD, LIST or STATS (about `what`): timed, its error
  // counted or failed, its answer given to `check`.
  template <class Call, class Check>
  bool observe(Op op, Client& client, const std::string& what, Call call, Check check);

  const Options& options_;
  std::string socket_;
  const Corpus& corpus_;
  const Verifier& verifier_;
  const ErrorPolicy& policy_;
  Invariants& invariants_;
  Tally& tally_;
  Popularity popularity_;
  std::vector<std::pair<Op, int>> mix_;
  int mix_total_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> ops_started_{0};
  std::atomic<int> running_{0};
  std::vector<std::thread> threads_;
};

}  // namespace genomed::stress
