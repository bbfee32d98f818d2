// Writes the seed corpora of the fuzz targets from genomed's own encoders,
// so every target starts from well-formed input of its format and mutates
// from there. Run once by hand (`fuzz_make_seeds fuzz/corpus`); the output is
// committed. The safetensors and PEFT config seeds are real files
// (scripts/fuzz.sh, --seed-files), not made here.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ipc/protocol.h"
#include "jobs/job_protocol.h"
#include "layout/contract.h"
#include "layout/resident_layout.h"

namespace {

namespace fs = std::filesystem;
namespace layout = genomed::layout;
namespace ipc = genomed::ipc;
namespace jobs = genomed::jobs;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

// A small two-module adapter's contract and layout, planned as the worker
// plans one (worker/format/layout_plan.cc).
layout::ResidentLayout sample_layout() {
  layout::AdapterContract contract;
  contract.config.peft_type = "LORA";
  contract.config.r = 4;
  contract.config.lora_alpha = 8;
  contract.config.target_modules = {"q_proj"};
  contract.config.rank_pattern = {{"layers.1.q_proj", 2}};
  contract.config.json =
      R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],)"
      R"("rank_pattern":{"layers.1.q_proj":2}})";
  const std::string base = "base_model.model.model.layers.";
  for (int layer : {0, 1}) {
    const std::string path = "model.layers." + std::to_string(layer) + ".self_attn.q_proj";
    const std::uint32_t rank = layer == 0 ? 4 : 2;
    contract.modules.push_back({path, genomed::ModuleKind::linear,
                                "base_model.model." + path + ".lora_A.weight",
                                "base_model.model." + path + ".lora_B.weight", std::nullopt,
                                std::nullopt, rank, 8.0, 8.0 / rank});
  }
  layout::ResidentLayout layout;
  layout.lora_r = 4;
  layout.lora_alpha = 8;
  layout.contract = layout::encode_contract(contract);
  for (const auto& m : contract.modules) {
    layout.tensors.push_back({m.a, layout::DType::F16, {m.rank, 16}, 0, 2ull * m.rank * 16});
    layout.tensors.push_back({m.b, layout::DType::F16, {16, m.rank}, 0, 2ull * 16 * m.rank});
  }
  std::sort(layout.tensors.begin(), layout.tensors.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::uint64_t table = layout::kFixedHeaderBytes + layout.contract.size();
  for (const auto& t : layout.tensors) table += layout::table_entry_bytes(t);
  layout.header_bytes = layout::align_to_tensor(table);
  std::uint64_t cursor = layout.header_bytes;
  for (auto& t : layout.tensors) {
    t.offset = cursor;
    cursor = layout::align_to_tensor(cursor + t.length);
  }
  layout.total_bytes = cursor;
  return layout;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  const layout::ResidentLayout layout = sample_layout();

  std::string range(layout.total_bytes, '\0');
  layout::write_layout_header(
      layout, std::span<std::byte>(reinterpret_cast<std::byte*>(range.data()), range.size()));
  // A seed that does not decode would only teach the fuzzer the error path.
  if (!layout::read_layout_header(
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(range.data()),
                                     range.size()))) {
    std::fprintf(stderr, "fuzz_make_seeds: the sample layout does not decode\n");
    return 1;
  }
  write(out / "fuzz_resident_layout", "two-modules", range);

  jobs::ProbeReply probe;
  probe.probe.layout = layout;
  probe.probe.weights_file_size = 4096;
  write(out / "fuzz_worker_reply", "probe", jobs::encode_probe_reply(probe));
  write(out / "fuzz_worker_reply", "fill", jobs::encode_fill_reply({layout.total_bytes}));
  write(out / "fuzz_worker_reply", "base-model",
        jobs::encode_base_model_reply({"llama", 1, 12}));
  write(out / "fuzz_worker_reply", "error",
        ipc::encode_error(genomed::Status(genomed::Errc::shape_mismatch, "a message")));

  ipc::Request r;
  r.op = ipc::Op::hello;
  r.version = ipc::kProtocolVersion;
  r.client = "seed";
  write(out / "fuzz_request", "hello", ipc::encode_request(r));
  r = {};
  r.op = ipc::Op::acquire;
  r.names = {"a", "group/b"};
  write(out / "fuzz_request", "acquire", ipc::encode_request(r));
  r = {};
  r.op = ipc::Op::release;
  r.leases = {1, 2, 3};
  write(out / "fuzz_request", "release", ipc::encode_request(r));
  for (ipc::Op op : {ipc::Op::load, ipc::Op::unload}) {
    r = {};
    r.op = op;
    r.names = {"a"};
    write(out / "fuzz_request", std::string(ipc::op_name(op)), ipc::encode_request(r));
  }
  for (ipc::Op op : {ipc::Op::list, ipc::Op::stats, ipc::Op::health}) {
    r = {};
    r.op = op;
    write(out / "fuzz_request", std::string(ipc::op_name(op)), ipc::encode_request(r));
  }

  const fs::path replies = out / "fuzz_client_reply";
  write(replies, "hello", ipc::encode_reply(ipc::HelloReply{1, "genomed 0.1.0", 1 << 20, 42}));
  ipc::AcquireReply acquire;
  acquire.grants.push_back({"a", 7, 4096, layout.total_bytes, 3});
  write(replies, "acquire", ipc::encode_reply(acquire));
  ipc::ListReply list;
  list.adapters.push_back({});
  list.adapters.back().name = "a";
  list.adapters.back().state = "ready";
  write(replies, "list", ipc::encode_reply(list));
  ipc::StatsReply stats;
  stats.values.emplace_back("bytes_resident", std::uint64_t{4096});
  write(replies, "stats", ipc::encode_reply(stats));
  write(replies, "health", ipc::encode_reply(ipc::HealthReply{}));
  write(replies, "error", ipc::encode_error(genomed::Status(genomed::Errc::no_space, "full")));
  return 0;
}
