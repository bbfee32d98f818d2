// The job protocol between the supervisor and its genome-worker processes:
// one msgpack frame per job over the worker's socketpair, one reply frame
// per job. PROBE validates an adapter and returns its resident layout; FILL
// writes it (or one part of it) into the arena range the supervisor
// assigned and reports each tensor's checksum; SEAL writes the resident
// header of a fill that was split into parts, once every part is written;
// BASE_MODEL reads the worker's --base-model (at start-up, so a bad one
// stops genomed there).
//
// PROBE and FILL frames carry the adapter's two open files as descriptors
// (SCM_RIGHTS: config, then weights): the supervisor opened them beneath
// its root, and the worker reads only through them, never by path.
//
// Before the first job, the worker offers a channel of its own
// (kChannelFrame) and the supervisor sends the arena there (kArenaFrame);
// every job then runs on that channel.
//
// The supervisor decodes worker replies as untrusted too: a worker that was
// fed a hostile file may misbehave, so every field is type-checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/status.h"
#include "layout/adapter_source.h"
#include "layout/fill_parts.h"
#include "layout/resident_layout.h"

namespace genomed::jobs {

// The worker's first frame, on the socket it was started with: this body
// with one end of a socketpair it made once it was non-dumpable attached.
// The supervisor checks that the worker itself created it (SO_PEERCRED) and
// from then on talks to the worker only there (loader/worker_process.h says
// why).
inline constexpr std::string_view kChannelFrame = "channel";
// The supervisor's first frame on that channel, before any job: this body
// with the arena's read-write descriptor attached.
inline constexpr std::string_view kArenaFrame = "arena";

enum class JobKind : std::uint8_t { probe, fill, base_model, seal };

struct Job {
  JobKind kind = JobKind::probe;
  layout::AdapterPaths paths;  // names the files in messages (all but base_model)
  // probe and fill: the open files, sent with the frame.
  std::shared_ptr<const layout::AdapterFds> files;
  // fill and seal: the range to write and the layout the probe planned
  // (seal: with every tensor's checksum, as the fill's parts reported them).
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  layout::ResidentLayout layout;
  // fill: which tensors this worker writes (all by default). A fill of all
  // the tensors also writes the header; a fill split into parts leaves it
  // to the seal.
  layout::FillPart part;
};

struct ProbeReply {
  layout::ProbeResult probe;
};

struct FillReply {
  std::uint64_t bytes_written = 0;
  // XXH3-64 of each tensor of the part, in layout order, computed over the
  // bytes as written into the arena (layout/tensor_checksum.h).
  std::vector<std::uint64_t> checksums;
};

// What the worker found in its --base-model directory.
struct BaseModelReply {
  std::string model_type;
  std::uint64_t files = 0;
  std::uint64_t weights = 0;
};

std::string encode_job(const Job& job);
// The descriptors that travel with the job's frame, in order (config,
// weights); empty for a job without files. They stay owned by job.files.
std::vector<int> job_descriptors(const Job& job);
// `fds` are the descriptors that came with the frame: a probe or a fill
// needs exactly its two files (Errc::bad_request otherwise), other jobs none.
Result<Job> decode_job(std::string_view body, std::vector<Fd> fds = {});

std::string encode_probe_reply(const ProbeReply& reply);
std::string encode_fill_reply(const FillReply& reply);
std::string encode_seal_reply();
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
Status decode_seal_reply(std::string_view body);
Result<BaseModelReply> decode_base_model_reply(std::string_view body);

}  // namespace genomed::jobs
