// The job protocol between the supervisor and its genome-worker processes:
// one msgpack frame per job over the worker's socketpair, one reply frame
// per job. PROBE validates an adapter and returns its resident layout; FILL
// writes it into the arena range the supervisor assigned; BASE_MODEL reads
// the worker's --base-model (at start-up, so a bad one stops genomed there).
//
// The supervisor decodes worker replies as untrusted too: a worker that was
// fed a hostile file may misbehave, so every field is type-checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "layout/adapter_source.h"
#include "layout/fill_parts.h"
#include "layout/resident_layout.h"

namespace genomed::jobs {

enum class JobKind : std::uint8_t { probe, fill, base_model };

struct Job {
  JobKind kind = JobKind::probe;
  format::AdapterPaths paths;
  // fill only: the range to write and the layout the probe planned.
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  format::ResidentLayout layout;
  format::FillPart part;  // which tensors this worker writes (all by default)
};

struct ProbeReply {
  format::ProbeResult probe;
};

struct FillReply {
  std::uint64_t bytes_written = 0;
};

// What the worker found in its --base-model directory.
struct BaseModelReply {
  std::string model_type;
  std::uint64_t files = 0;
  std::uint64_t weights = 0;
};

std::string encode_job(const Job& job);
Result<Job> decode_job(std::string_view body);

std::string encode_probe_reply(const ProbeReply& reply);
std::string encode_fill_reply(const FillReply& reply);
std::string encode_base_model_reply(const BaseModelReply& reply);
// What a worker sends for its `reply` to the job `what` ("probe of PATH"):
// the reply itself when it fits one reply frame (ipc::kMaxReplyFrame), else
// an error reply, Errc::limit_exceeded naming the limit, the size and `what`.
// An oversized frame would read as a protocol violation and cost the worker
// its life and the adapter a strike; this is the job's typed result instead.
std::string fit_reply_frame(std::string reply, std::string_view what);

// OK when `body` is one msgpack map within the job protocol's decode limits
// (the pool checks every reply so before handing it on; anything else means
// the worker no longer follows the protocol: worker_protocol).
Status check_reply(std::string_view body);

// Replies carry the worker's error (its Errc and message) when "ok" is false.
Result<ProbeReply> decode_probe_reply(std::string_view body);
Result<FillReply> decode_fill_reply(std::string_view body);
Result<BaseModelReply> decode_base_model_reply(std::string_view body);

}  // namespace genomed::jobs
