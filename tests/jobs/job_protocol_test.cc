#include "jobs/job_protocol.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"
#include "layout/contract.h"

namespace genomed::jobs {
namespace {

using layout::DType;
using layout::ResidentLayout;
using layout::ResidentTensor;

ResidentLayout sample_layout() {
  ResidentLayout l;
  l.lora_r = 16;
  l.lora_alpha = 24.5;
  l.header_bytes = 320;
  l.total_bytes = 320 + 8192 + 4096 + 64;
  l.tensors = {
      {.name = "base_model.model.layers.0.self_attn.q_proj.lora_A.weight",
       .dtype = DType::F16,
       .shape = {16, 256},
       .offset = 320,
       .length = 8192,
       .checksum = 0xfedcba9876543210ull},
      {.name = "base_model.model.layers.0.self_attn.q_proj.lora_B.weight",
       .dtype = DType::BF16,
       .shape = {128, 16},
       .offset = 320 + 8192,
       .length = 4096},
      {.name = "scalar",
       .dtype = DType::U64,
       .shape = {},
       .offset = 320 + 8192 + 4096,
       .length = 8},
      {.name = "empty",
       .dtype = DType::F8_E4M3,
       .shape = {0, 3},
       .offset = 320 + 8192 + 4096 + 64,
       .length = 0},
  };
  l.contract = std::string("\x81\xa1k\x01\x00\xff", 6);  // opaque bytes, NUL included
  return l;
}

void expect_same_layout(const ResidentLayout& got, const ResidentLayout& want) {
  EXPECT_EQ(got.lora_r, want.lora_r);
  EXPECT_EQ(got.lora_alpha, want.lora_alpha);
  EXPECT_EQ(got.header_bytes, want.header_bytes);
  EXPECT_EQ(got.total_bytes, want.total_bytes);
  EXPECT_EQ(got.contract, want.contract);
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (std::size_t i = 0; i < want.tensors.size(); ++i) {
    SCOPED_TRACE(want.tensors[i].name);
    EXPECT_EQ(got.tensors[i].name, want.tensors[i].name);
    EXPECT_EQ(got.tensors[i].dtype, want.tensors[i].dtype);
    EXPECT_EQ(got.tensors[i].shape, want.tensors[i].shape);
    EXPECT_EQ(got.tensors[i].offset, want.tensors[i].offset);
    EXPECT_EQ(got.tensors[i].length, want.tensors[i].length);
    EXPECT_EQ(got.tensors[i].checksum, want.tensors[i].checksum);
  }
  EXPECT_TRUE(layout::same_layout(got, want));
}

const layout::AdapterPaths kPaths{"/srv/adapters/org/m/adapter_config.json",
                                  "/srv/adapters/org/m/adapter_model.safetensors"};

// Two open descriptors, as a probe or fill carries.
std::vector<Fd> two_files() {
  std::vector<Fd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  fds.emplace_back(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
  return fds;
}

TEST(JobProtocol, ProbeJobRoundTripsItsPathsAndTakesItsTwoDescriptors) {
  auto fds = two_files();
  const int config = fds[0].get();
  const int weights = fds[1].get();
  const auto job =
      decode_job(encode_job({.kind = JobKind::probe, .paths = kPaths}), std::move(fds));
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->kind, JobKind::probe);
  EXPECT_EQ(job->paths.config, kPaths.config);
  EXPECT_EQ(job->paths.weights, kPaths.weights);
  EXPECT_TRUE(job->layout.tensors.empty());
  ASSERT_NE(job->files, nullptr);
  EXPECT_EQ(job->files->config.get(), config);
  EXPECT_EQ(job->files->weights.get(), weights);
  EXPECT_EQ(job_descriptors(*job), (std::vector<int>{config, weights}));
}

TEST(JobProtocol, AProbeOrFillWithoutExactlyTwoDescriptorsIsRefused) {
  for (JobKind kind : {JobKind::probe, JobKind::fill}) {
    const std::string body = encode_job({.kind = kind, .paths = kPaths});
    EXPECT_EQ(decode_job(body).code(), Errc::bad_request);
    auto three = two_files();
    three.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    EXPECT_EQ(decode_job(body, std::move(three)).code(), Errc::bad_request);
  }
  // A seal (or base_model) job carries none, and refuses any.
  EXPECT_EQ(decode_job(encode_job({.kind = JobKind::seal, .paths = kPaths}), two_files()).code(),
            Errc::bad_request);
}

TEST(JobProtocol, OnlyProbeAndFillSendDescriptors) {
  auto fds = two_files();
  auto files = std::make_shared<const layout::AdapterFds>(
      layout::AdapterFds{std::move(fds[0]), std::move(fds[1])});
  EXPECT_EQ(job_descriptors({.kind = JobKind::probe, .files = files}).size(), 2u);
  EXPECT_EQ(job_descriptors({.kind = JobKind::fill, .files = files}).size(), 2u);
  EXPECT_TRUE(job_descriptors({.kind = JobKind::seal, .files = files}).empty());
  EXPECT_TRUE(job_descriptors({.kind = JobKind::base_model, .files = files}).empty());
}

TEST(JobProtocol, FillJobRoundTripsRangeAndAMultiTensorLayout) {
  const Job in{.kind = JobKind::fill,
               .paths = kPaths,
               .offset = 1ull << 34,
               .length = sample_layout().total_bytes,
               .layout = sample_layout()};
  const auto job = decode_job(encode_job(in), two_files());
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->kind, JobKind::fill);
  EXPECT_EQ(job->paths.config, kPaths.config);
  EXPECT_EQ(job->paths.weights, kPaths.weights);
  EXPECT_EQ(job->offset, 1ull << 34);
  EXPECT_EQ(job->length, in.length);
  expect_same_layout(job->layout, in.layout);
}

TEST(JobProtocol, SealJobRoundTripsRangeAndLayoutWithItsChecksums) {
  const Job in{.kind = JobKind::seal,
               .paths = kPaths,
               .offset = 8192,
               .length = sample_layout().total_bytes,
               .layout = sample_layout()};
  const auto job = decode_job(encode_job(in));
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->kind, JobKind::seal);
  EXPECT_EQ(job->files, nullptr);
  EXPECT_EQ(job->paths.weights, kPaths.weights);
  EXPECT_EQ(job->offset, 8192u);
  EXPECT_EQ(job->length, in.length);
  expect_same_layout(job->layout, in.layout);
}

TEST(JobProtocol, FillJobRoundTripsEveryDtype) {
  ResidentLayout l;
  l.lora_r = 1;
  l.lora_alpha = 1;
  for (int d = 0; d < layout::kDTypeCount; ++d) {
    l.tensors.push_back({.name = "t" + std::to_string(d),
                         .dtype = static_cast<DType>(d),
                         .shape = {1},
                         .offset = 64ull * static_cast<std::uint64_t>(d + 1),
                         .length = 1});
  }
  const auto job =
      decode_job(encode_job({.kind = JobKind::fill, .paths = kPaths, .layout = l}), two_files());
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  expect_same_layout(job->layout, l);
}

TEST(JobProtocol, UnknownJobIsUnknownOp) {
  ipc::MapWriter w;
  w.put("op", "format_disk").put("config", "a").put("weights", "b");
  EXPECT_EQ(decode_job(w.finish()).code(), Errc::unknown_op);
}

TEST(JobProtocol, JobThatIsNotMsgpackIsMalformed) {
  EXPECT_EQ(decode_job("not msgpack at all").code(), Errc::malformed_frame);
}

TEST(JobProtocol, ProbeReplyRoundTrips) {
  ProbeReply in;
  in.probe.layout = sample_layout();
  in.probe.weights_file_size = 123456789012ull;
  in.probe.weights_mtime_ns = 1'700'000'000'123'456'789LL;
  const auto out = decode_probe_reply(encode_probe_reply(in));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->probe.weights_file_size, in.probe.weights_file_size);
  EXPECT_EQ(out->probe.weights_mtime_ns, in.probe.weights_mtime_ns);
  expect_same_layout(out->probe.layout, in.probe.layout);
}

TEST(JobProtocol, ProbeReplyRoundTripsAPreEpochMtime) {
  ProbeReply in;
  in.probe.layout = sample_layout();
  in.probe.weights_mtime_ns = -5'000'000'000LL;
  const auto out = decode_probe_reply(encode_probe_reply(in));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->probe.weights_mtime_ns, -5'000'000'000LL);
}

TEST(JobProtocol, FillReplyRoundTripsWithItsChecksums) {
  const std::vector<std::uint64_t> sums = {0, 1, 0xffffffffffffffffull, 0x2d06800538d394c2ull};
  const auto out =
      decode_fill_reply(encode_fill_reply({.bytes_written = 987654321, .checksums = sums}));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->bytes_written, 987654321u);
  EXPECT_EQ(out->checksums, sums);
}

TEST(JobProtocol, FillReplyWithoutChecksumsIsWorkerProtocol) {
  ipc::MapWriter w;
  w.put("ok", true).put("bytes_written", std::uint64_t{64});
  EXPECT_EQ(decode_fill_reply(w.finish()).code(), Errc::worker_protocol);
}

TEST(JobProtocol, SealReplyRoundTripsAndCarriesTheWorkersError) {
  EXPECT_TRUE(decode_seal_reply(encode_seal_reply()).ok());
  EXPECT_EQ(decode_seal_reply(ipc::encode_error(Status(Errc::internal, "x"))).code(),
            Errc::internal);
}

TEST(JobProtocol, WorkerErrorReplyBecomesThatErrcAndMessage) {
  for (Errc code : {Errc::st_dtype_unknown, Errc::file_unreadable, Errc::file_changed,
                    Errc::config_invalid_json}) {
    const std::string message = "adapter_model.safetensors: " + std::string(errc_name(code));
    const std::string body = ipc::encode_error(Status(code, message));
    const auto probe = decode_probe_reply(body);
    EXPECT_EQ(probe.code(), code);
    EXPECT_EQ(probe.status().message(), message);
    const auto fill = decode_fill_reply(body);
    EXPECT_EQ(fill.code(), code);
    EXPECT_EQ(fill.status().message(), message);
  }
}

// Replies a misbehaving worker could send; each must become worker_protocol.
std::vector<std::pair<std::string, std::string>> malformed_replies() {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("not msgpack", "\xc1\xc1\xc1");
  out.emplace_back("empty body", "");
  out.emplace_back("an array", std::string("\x91\xc3", 2));
  out.emplace_back("trailing bytes", encode_fill_reply({.bytes_written = 1}) + "x");
  {
    ipc::MapWriter w;
    w.put("bytes_written", std::uint64_t{1});
    out.emplace_back("no ok", w.finish());
  }
  {
    ipc::MapWriter w;
    w.put("ok", "yes");
    out.emplace_back("ok not a boolean", w.finish());
  }
  {
    ipc::MapWriter w;
    w.put("ok", false).put("message", "boom");
    out.emplace_back("error without code", w.finish());
  }
  {
    ipc::MapWriter w;
    w.put("ok", false).put("code", std::uint64_t{12});
    out.emplace_back("error without message", w.finish());
  }
  {
    ipc::MapWriter w;
    w.put("ok", false).put("code", std::uint64_t{4000}).put("message", "x");
    out.emplace_back("error with unknown code", w.finish());
  }
  {
    ipc::MapWriter w;
    w.put("ok", false).put("code", std::uint64_t{0}).put("message", "x");
    out.emplace_back("error with code ok", w.finish());
  }
  {
    ipc::MapWriter w;
    w.put("ok", true);
    out.emplace_back("ok without fields", w.finish());
  }
  return out;
}

TEST(JobProtocol, MalformedWorkerReplyIsWorkerProtocol) {
  for (const auto& [what, body] : malformed_replies()) {
    const auto probe = decode_probe_reply(body);
    EXPECT_EQ(probe.code(), Errc::worker_protocol)
        << "probe, " << what << ": " << probe.status().to_string();
    const auto fill = decode_fill_reply(body);
    EXPECT_EQ(fill.code(), Errc::worker_protocol)
        << "fill, " << what << ": " << fill.status().to_string();
  }
}

// A probe reply whose single tensor entry is built by `tensor`.
std::string probe_reply_with_tensor(const std::function<void(ipc::MapWriter&)>& tensor) {
  ipc::MapWriter t;
  tensor(t);
  ipc::MapWriter layout;
  layout.put("r", std::uint64_t{8})
      .put("alpha", 16.0)
      .put("header_bytes", std::uint64_t{64})
      .put("total_bytes", std::uint64_t{128})
      .put_packed_array("tensors", {t.finish()})
      .put_bin("contract", "\x80");  // an empty msgpack map
  ipc::MapWriter w;
  w.put("ok", true)
      .put("file_size", std::uint64_t{100})
      .put("mtime_ns", std::int64_t{1})
      .put_packed("layout", layout.finish());
  return w.finish();
}

TEST(JobProtocol, HandBuiltProbeReplyDecodes) {
  // Guards the helper below: with a valid tensor the reply is accepted.
  const auto r = decode_probe_reply(probe_reply_with_tensor([](ipc::MapWriter& t) {
    t.put("name", "w")
        .put("dtype", std::uint64_t{12})
        .put("shape", std::vector<std::uint64_t>{4, 4})
        .put("offset", std::uint64_t{64})
        .put("length", std::uint64_t{64})
        .put("checksum", std::uint64_t{7});
  }));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->probe.layout.tensors.size(), 1u);
  EXPECT_EQ(r->probe.layout.tensors[0].dtype, DType::F32);
}

TEST(JobProtocol, LayoutWithUnknownDtypeIsWorkerProtocol) {
  for (std::uint64_t dtype :
       {std::uint64_t{layout::kDTypeCount}, std::uint64_t{255}, std::uint64_t{256 + 12}}) {
    const auto r = decode_probe_reply(probe_reply_with_tensor([dtype](ipc::MapWriter& t) {
      t.put("name", "w")
          .put("dtype", dtype)
          .put("shape", std::vector<std::uint64_t>{4, 4})
          .put("offset", std::uint64_t{64})
          .put("length", std::uint64_t{64})
          .put("checksum", std::uint64_t{7});
    }));
    EXPECT_EQ(r.code(), Errc::worker_protocol)
        << "dtype " << dtype << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find("dtype"), std::string::npos) << r.status().message();
  }
}

TEST(JobProtocol, LayoutTensorWithAMistypedFieldIsWorkerProtocol) {
  const auto r = decode_probe_reply(probe_reply_with_tensor([](ipc::MapWriter& t) {
    t.put("name", "w")
        .put("dtype", std::uint64_t{12})
        .put("shape", "4x4")
        .put("offset", std::uint64_t{64})
        .put("length", std::uint64_t{64})
        .put("checksum", std::uint64_t{7});
  }));
  EXPECT_EQ(r.code(), Errc::worker_protocol) << r.status().to_string();
  EXPECT_NE(r.status().message().find("shape"), std::string::npos) << r.status().message();
}

// --- replies and the frame they travel in --------------------------------------------

// A probe reply whose layout carries `contract_bytes` of contract.
std::string probe_reply_with_contract(std::size_t contract_bytes) {
  ProbeReply in;
  in.probe.layout = sample_layout();
  in.probe.layout.contract = std::string(contract_bytes, 'c');
  return encode_probe_reply(in);
}

TEST(JobProtocol, ReplyThatFitsAFrameIsSentAsItIs) {
  const std::string reply = probe_reply_with_contract(100);
  EXPECT_EQ(fit_reply_frame(reply, "probe of x"), reply);
}

TEST(JobProtocol, ReplyTooLargeForAFrameBecomesATypedError) {
  // Tensor tables of many tensors with many dims fit every per-file limit
  // and still add up past a frame: the worker must answer with an error.
  ProbeReply in;
  in.probe.layout = sample_layout();
  const ResidentTensor wide{.name = "",
                            .dtype = DType::U8,
                            .shape = std::vector<std::uint64_t>(layout::kMaxDims, 1ull << 40),
                            .offset = 1ull << 40,
                            .length = 0};
  for (int i = 0; in.probe.layout.tensors.size() < 131'072; ++i) {
    ResidentTensor t = wide;
    t.name = "tensor-" + std::to_string(i);
    in.probe.layout.tensors.push_back(std::move(t));
  }
  const std::string reply = encode_probe_reply(in);
  ASSERT_GT(reply.size(), ipc::kMaxReplyFrame);
  const std::string sent = fit_reply_frame(reply, "probe of /a/adapter_model.safetensors");
  EXPECT_LE(sent.size(), ipc::kMaxReplyFrame);
  const auto decoded = decode_probe_reply(sent);
  EXPECT_EQ(decoded.code(), Errc::limit_exceeded) << decoded.status().to_string();
  for (const std::string& needle : std::vector<std::string>{
           "kMaxReplyFrame", std::to_string(reply.size()), "/a/adapter_model.safetensors"}) {
    EXPECT_NE(decoded.status().message().find(needle), std::string::npos)
        << decoded.status().message();
  }
}

TEST(JobProtocol, ReplyCheckAcceptsAContractUpToItsLimit) {
  // The pool once checked worker replies with the clients' limits (1 MiB
  // strings): a valid probe reply with a 1-4 MiB contract killed the worker
  // as a protocol violation, twice, and quarantined the adapter.
  EXPECT_TRUE(check_reply(probe_reply_with_contract(layout::kMaxContractBytes)).ok());
  EXPECT_FALSE(check_reply("not msgpack").ok());
}

}  // namespace
}  // namespace genomed::jobs
