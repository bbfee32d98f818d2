#include "jobs/job_protocol.h"

#include <algorithm>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::jobs {
namespace {

using ipc::ArrayView;
using ipc::MapView;
using ipc::MapWriter;
using ipc::Message;

// Jobs and replies may carry tensor tables of many thousand entries, and a
// layout's contract (up to layout::kMaxContractBytes) as one bin value.
constexpr ipc::DecodeLimits kJobLimits{1u << 20, 1u << 16, layout::kMaxContractBytes, 8};

std::string encode_layout(const layout::ResidentLayout& layout) {
  std::vector<std::string> tensors;
  tensors.reserve(layout.tensors.size());
  for (const auto& t : layout.tensors) {
    MapWriter tw;
    tw.put("name", t.name)
        .put("dtype", static_cast<std::uint64_t>(t.dtype))
        .put("shape", t.shape)
        .put("offset", t.offset)
        .put("length", t.length)
        .put("checksum", t.checksum);
    tensors.push_back(tw.finish());
  }
  MapWriter w;
  w.put("r", layout.lora_r)
      .put("alpha", layout.lora_alpha)
      .put("header_bytes", layout.header_bytes)
      .put("total_bytes", layout.total_bytes)
      .put_packed_array("tensors", tensors)
      .put_bin("contract", layout.contract);
  return w.finish();
}

Result<layout::ResidentLayout> decode_layout(const MapView& m) {
  layout::ResidentLayout layout;
  GENOMED_ASSIGN_OR_RETURN(std::uint64_t r, m.u64("r"));
  layout.lora_r = static_cast<std::uint32_t>(r);
  GENOMED_ASSIGN_OR_RETURN(layout.lora_alpha, m.f64("alpha"));
  GENOMED_ASSIGN_OR_RETURN(layout.header_bytes, m.u64("header_bytes"));
  GENOMED_ASSIGN_OR_RETURN(layout.total_bytes, m.u64("total_bytes"));
  GENOMED_ASSIGN_OR_RETURN(ArrayView tensors, m.array("tensors"));
  layout.tensors.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    GENOMED_ASSIGN_OR_RETURN(MapView t, tensors.map_at(i));
    layout::ResidentTensor rt;
    GENOMED_ASSIGN_OR_RETURN(rt.name, t.str("name"));
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t dtype, t.u64("dtype"));
    const auto dt = layout::dtype_from_int(dtype);
    if (!dt)
      return Status(Errc::worker_protocol, "layout names unknown dtype " + std::to_string(dtype));
    rt.dtype = *dt;
    GENOMED_ASSIGN_OR_RETURN(ArrayView shape, t.array("shape"));
    for (std::size_t d = 0; d < shape.size(); ++d) {
      GENOMED_ASSIGN_OR_RETURN(std::uint64_t dim, shape.u64_at(d));
      rt.shape.push_back(dim);
    }
    GENOMED_ASSIGN_OR_RETURN(rt.offset, t.u64("offset"));
    GENOMED_ASSIGN_OR_RETURN(rt.length, t.u64("length"));
    GENOMED_ASSIGN_OR_RETURN(rt.checksum, t.u64("checksum"));
    layout.tensors.push_back(std::move(rt));
  }
  GENOMED_ASSIGN_OR_RETURN(layout.contract, m.bin("contract"));
  return layout;
}

// Parses a worker reply; "ok": false becomes the Status the worker reported.
Result<Message> parse_reply(std::string_view body) {
  auto m = Message::parse(body, kJobLimits);
  if (!m) return Status(Errc::worker_protocol, "worker reply: " + m.status().message());
  auto ok = m->root().boolean("ok");
  if (!ok) return Status(Errc::worker_protocol, "worker reply: " + ok.status().message());
  if (!*ok) {
    auto code = m->root().u64("code");
    auto message = m->root().str("message");
    if (!code || !message)
      return Status(Errc::worker_protocol, "worker error reply lacks code or message");
    const auto errc = errc_from_int(*code);
    if (!errc || *errc == Errc::ok) {
      return Status(Errc::worker_protocol,
                    "worker sent unknown error code " + std::to_string(*code));
    }
    return Status(*errc, *message);
  }
  return m;
}

const char* op_name(JobKind kind) {
  switch (kind) {
    case JobKind::probe:
      return "probe";
    case JobKind::fill:
      return "fill";
    case JobKind::seal:
      return "seal";
    case JobKind::base_model:
      return "base_model";
  }
  return "?";
}

bool carries_files(JobKind kind) { return kind == JobKind::probe || kind == JobKind::fill; }

}  // namespace

std::string encode_job(const Job& job) {
  MapWriter w;
  w.put("op", op_name(job.kind));
  if (job.kind == JobKind::base_model) return w.finish();
  w.put("config", job.paths.config).put("weights", job.paths.weights);
  if (job.kind == JobKind::fill || job.kind == JobKind::seal) {
    w.put("offset", job.offset).put("length", job.length);
  }
  if (job.kind == JobKind::fill) {
    w.put("part_begin", std::uint64_t{job.part.begin})
        .put("part_end", std::uint64_t{std::min(job.part.end, job.layout.tensors.size())});
  }
  if (job.kind == JobKind::fill || job.kind == JobKind::seal) {
    w.put_packed("layout", encode_layout(job.layout));
  }
  return w.finish();
}

std::vector<int> job_descriptors(const Job& job) {
  if (!carries_files(job.kind) || !job.files) return {};
  return {job.files->config.get(), job.files->weights.get()};
}

Result<Job> decode_job(std::string_view body, std::vector<Fd> fds) {
  GENOMED_ASSIGN_OR_RETURN(Message m, Message::parse(body, kJobLimits));
  const MapView root = m.root();
  Job job;
  GENOMED_ASSIGN_OR_RETURN(std::string op, root.str("op"));
  if (op == "probe")
    job.kind = JobKind::probe;
  else if (op == "fill")
    job.kind = JobKind::fill;
  else if (op == "seal")
    job.kind = JobKind::seal;
  else if (op == "base_model")
    job.kind = JobKind::base_model;
  else
    return Status(Errc::unknown_op, "unknown job '" + op.substr(0, 64) + "'");
  const std::size_t wanted = carries_files(job.kind) ? 2 : 0;
  if (fds.size() != wanted) {
    return Status(Errc::bad_request, "a " + op + " job comes with " + std::to_string(wanted) +
                                         " descriptors, not " + std::to_string(fds.size()));
  }
  if (job.kind == JobKind::base_model) return job;
  GENOMED_ASSIGN_OR_RETURN(job.paths.config, root.str("config"));
  GENOMED_ASSIGN_OR_RETURN(job.paths.weights, root.str("weights"));
  if (carries_files(job.kind)) {
    job.files = std::make_shared<const layout::AdapterFds>(
        layout::AdapterFds{std::move(fds[0]), std::move(fds[1])});
  }
  if (job.kind == JobKind::probe) return job;
  GENOMED_ASSIGN_OR_RETURN(job.offset, root.u64("offset"));
  GENOMED_ASSIGN_OR_RETURN(job.length, root.u64("length"));
  GENOMED_ASSIGN_OR_RETURN(MapView layout, root.map("layout"));
  GENOMED_ASSIGN_OR_RETURN(job.layout, decode_layout(layout));
  if (job.kind == JobKind::fill) {
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t part_begin, root.u64("part_begin"));
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t part_end, root.u64("part_end"));
    if (part_begin > part_end || part_end > job.layout.tensors.size()) {
      return Status(Errc::bad_request, "fill part [" + std::to_string(part_begin) + ", " +
                                           std::to_string(part_end) +
                                           ") is not within the layout's tensors");
    }
    job.part = {static_cast<std::size_t>(part_begin), static_cast<std::size_t>(part_end)};
  }
  return job;
}

std::string encode_probe_reply(const ProbeReply& reply) {
  MapWriter w;
  w.put("ok", true)
      .put("file_size", reply.probe.weights_file_size)
      .put("mtime_ns", static_cast<std::int64_t>(reply.probe.weights_mtime_ns))
      .put_packed("layout", encode_layout(reply.probe.layout));
  return w.finish();
}

std::string fit_reply_frame(std::string reply, std::string_view what) {
  if (reply.size() <= ipc::kMaxReplyFrame) return reply;
  return ipc::encode_error(
      Status(Errc::limit_exceeded,
             "the reply to the " + std::string(what) + " takes " + std::to_string(reply.size()) +
                 " bytes, more than a job reply frame holds (kMaxReplyFrame = " +
                 std::to_string(ipc::kMaxReplyFrame) +
                 " bytes): the adapter's tensor table and contract are too large together"));
}

Status check_reply(std::string_view body) { return Message::parse(body, kJobLimits).status(); }

std::string encode_fill_reply(const FillReply& reply) {
  MapWriter w;
  w.put("ok", true).put("bytes_written", reply.bytes_written).put("checksums", reply.checksums);
  return w.finish();
}

std::string encode_seal_reply() {
  MapWriter w;
  w.put("ok", true);
  return w.finish();
}

std::string encode_base_model_reply(const BaseModelReply& reply) {
  MapWriter w;
  w.put("ok", true)
      .put("model_type", reply.model_type)
      .put("files", reply.files)
      .put("weights", reply.weights);
  return w.finish();
}

Result<BaseModelReply> decode_base_model_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  auto type = m.root().str("model_type");
  auto files = m.root().u64("files");
  auto weights = m.root().u64("weights");
  if (!type || !files || !weights) {
    return Status(Errc::worker_protocol, "base_model reply lacks fields");
  }
  return BaseModelReply{*type, *files, *weights};
}

Result<ProbeReply> decode_probe_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  ProbeReply r;
  auto size = m.root().u64("file_size");
  auto mtime = m.root().i64("mtime_ns");
  auto layout_map = m.root().map("layout");
  if (!size || !mtime || !layout_map)
    return Status(Errc::worker_protocol, "probe reply lacks fields");
  auto layout = decode_layout(*layout_map);
  if (!layout) return Status(Errc::worker_protocol, "probe reply: " + layout.status().message());
  r.probe.weights_file_size = *size;
  r.probe.weights_mtime_ns = *mtime;
  r.probe.layout = std::move(layout).value();
  return r;
}

Result<FillReply> decode_fill_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  auto written = m.root().u64("bytes_written");
  if (!written) return Status(Errc::worker_protocol, "fill reply: " + written.status().message());
  auto sums = m.root().array("checksums");
  if (!sums) return Status(Errc::worker_protocol, "fill reply: " + sums.status().message());
  FillReply r{*written, {}};
  r.checksums.reserve(sums->size());
  for (std::size_t i = 0; i < sums->size(); ++i) {
    auto sum = sums->u64_at(i);
    if (!sum) return Status(Errc::worker_protocol, "fill reply: " + sum.status().message());
    r.checksums.push_back(*sum);
  }
  return r;
}

Status decode_seal_reply(std::string_view body) { return parse_reply(body).status(); }

}  // namespace genomed::jobs
