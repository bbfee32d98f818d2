// The raw operations genome-bench compares genomed with, measured in the
// same run: memcpy, an in-process safetensors-style load (malloc + pread),
// mmap + read every word (Google Benchmark), and a Unix socketpair
// ping-pong with frames the size of ACQUIRE's (latency and throughput).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "figures.h"
#include "options.h"

namespace genomed::bench {

struct FrameSizes {
  std::size_t acquire_request = 0;  // 4-byte length prefix + msgpack body
  std::size_t acquire_reply = 0;
  std::size_t release_request = 0;
};

// One long-lived ping-pong pair: the echo process is forked at start (while
// this process has no other threads) and kept until the hit phase, whose
// latency blocks alternate with raw ping-pong blocks so that both see the
// same machine state.
struct EchoPeer {
  std::vector<std::array<int, 2>> pairs;
  pid_t pid = -1;
  std::vector<char> out, in;
};

// memcpy of 256 MiB, and per adapter of `sizes` the in-process load
// (malloc + pread of the data, as safetensors' load_file does) and mmap +
// read every word, o.reps repetitions each (at least 2): median bytes/s by
// benchmark name (memcpy_256m, inprocess_load_LABEL, inprocess_mmap_LABEL).
std::map<std::string, double> run_micro_benchmarks(const Options& o,
                                                   const std::vector<Adapter>& sizes);

// Measured by encoding the frames the client and daemon exchange for one
// acquire of `name` (representative lease id, offset, length, generation).
FrameSizes measure_frames(const std::string& name);

// Forks the echo process of one ping-pong pair (call it while this process
// has no other threads).
EchoPeer start_echo_peer(const FrameSizes& f);

// Closes this side of `pairs` (EOF ends the echo threads) and reaps `pid`.
void end_echo_server(const std::vector<std::array<int, 2>>& pairs, pid_t pid);

// Appends `iterations` round-trip times (microseconds) after `warmup` untimed ones.
void socket_rtt_block(EchoPeer& e, int warmup, int iterations, std::vector<double>& us);

// Runs `op(thread_index)` in `threads` threads for `seconds`; returns ops/s.
// `op` returns false on failure (the run then dies).
double run_for(int threads, double seconds, const std::function<bool(int)>& op);

// Round trips/s of `pairs_count` socketpairs, each driven by its own thread
// against a forked echo process with a thread per pair, for `seconds`.
double socket_throughput(const FrameSizes& f, int pairs_count, double seconds);

}  // namespace genomed::bench
