#include "tools/stress/scratch_root.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fd.h"
#include "layout/adapter_source.h"
#include "tools/fixture/fixture.h"

namespace genomed::stress {
namespace {

namespace fs = std::filesystem;

Status io(const std::string& what, const std::error_code& ec) {
  return Status(Errc::environment, what + ": " + ec.message());
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status(Errc::environment, "cannot write " + path);
  return Status::Ok();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fixture::AdapterSpec small_spec(std::uint64_t seed) {
  return {.rank = 4, .layers = 1, .hidden = 32, .dtype = layout::DType::F16, .seed = seed};
}

// A weights file of one [4, 32] tensor declared with `dtype` and ending at
// `end`, over 256 zero bytes of data.
Status one_tensor_file(const std::string& path, const std::string& dtype, int end) {
  return fixture::write_raw_safetensors(
      path,
      R"({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":{"dtype":")" + dtype +
          R"(","shape":[4,32],"data_offsets":[0,)" + std::to_string(end) + "]}}",
      std::string(256, '\0'));
}

}  // namespace

Result<ScratchRoot> ScratchRoot::create() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/genome-stress.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Status(Errc::environment, "mkdtemp " + tmpl + ": " + std::strerror(errno));
  std::error_code ec;
  fs::create_directories(tmpl + "/root", ec);
  fs::create_directories(tmpl + "/versions", ec);
  if (ec) return io("create " + tmpl + "/root", ec);
  return ScratchRoot(tmpl);
}

Status ScratchRoot::copy_adapter(const std::string& from_root, const std::string& name) {
  std::error_code ec;
  const std::string to = root() + "/" + name;
  fs::create_directories(to, ec);
  for (const char* file : {layout::kConfigFileName, layout::kWeightsFileName}) {
    fs::copy_file(from_root + "/" + name + "/" + file, to + "/" + file,
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return io("copy " + from_root + "/" + name + "/" + file, ec);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ScratchRoot::generate(int count, std::uint64_t seed) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) {
    const std::uint32_t rank = 16u << (i % 3);
    const std::uint32_t hidden = (i % 2) ? 1024 : 512;
    const std::uint32_t layers = 2 + static_cast<std::uint32_t>(i % 3);
    fixture::AdapterSpec spec{.rank = rank,
                              .layers = layers,
                              .hidden = hidden,
                              .dtype = (i % 4 == 3) ? layout::DType::BF16 : layout::DType::F16,
                              .seed = seed * 1000 + static_cast<std::uint64_t>(i)};
    const std::string name = "gen-" + std::to_string(i);
    if (Status s = fixture::write_adapter(root() + "/" + name, spec); !s.ok()) return s;
    names.push_back(name);
  }
  return names;
}

Result<AdapterTruth> ScratchRoot::make_mutable(int index, int versions, std::uint64_t seed) {
  AdapterTruth truth;
  truth.name = "mut-" + std::to_string(index);
  for (int v = 0; v < versions; ++v) {
    const std::string dir = dir_ + "/versions/" + truth.name + "-v" + std::to_string(v);
    fixture::AdapterSpec spec{.rank = 32,
                              .layers = 2,
                              .hidden = 512,
                              .dtype = layout::DType::F16,
                              .seed = seed * 7919 + static_cast<std::uint64_t>(index * 64 + v)};
    if (Status s = fixture::write_adapter(dir, spec); !s.ok()) return s;
    const std::string weights = dir + "/" + layout::kWeightsFileName;
    auto version = read_truth(weights);
    if (!version) return version.status();
    truth.versions.push_back(std::move(*version));
    truth.version_files.push_back(weights);
    if (v == 0) {
      if (Status s = copy_adapter(dir_ + "/versions", truth.name + "-v0"); !s.ok()) return s;
      std::error_code ec;
      fs::rename(root() + "/" + truth.name + "-v0", root() + "/" + truth.name, ec);
      if (ec) return io("rename into " + root() + "/" + truth.name, ec);
    }
  }
  return truth;
}

Status ScratchRoot::replace(const AdapterTruth& adapter, int v) {
  const std::string target = root() + "/" + adapter.name + "/" + layout::kWeightsFileName;
  const std::string temp = target + ".stress-new";
  std::error_code ec;
  fs::copy_file(adapter.version_files.at(static_cast<std::size_t>(v)), temp,
                fs::copy_options::overwrite_existing, ec);
  if (ec) return io("copy a version of " + adapter.name, ec);
  fs::rename(temp, target, ec);
  if (ec) return io("rename over " + target, ec);
  return Status::Ok();
}

Status ScratchRoot::rewrite(const AdapterTruth& adapter, int v, bool truncate_first) {
  const std::string target = root() + "/" + adapter.name + "/" + layout::kWeightsFileName;
  const std::string bytes = read_text(adapter.version_files.at(static_cast<std::size_t>(v)));
  if (bytes.empty()) return Status(Errc::environment, "cannot read a version of " + adapter.name);
  // The open waits while the daemon lets go of a read lease of a load.
  Fd fd(::open(target.c_str(), O_WRONLY | O_CLOEXEC | (truncate_first ? O_TRUNC : 0)));
  if (!fd.valid()) return Status(Errc::environment, "open " + target + ": " + std::strerror(errno));
  // In place: one write call, whose times change before its bytes are
  // copied; after O_TRUNC: 64 KiB calls, the file growing back meanwhile.
  const std::size_t kChunk = truncate_first ? 64 << 10 : bytes.size();
  for (std::size_t at = 0; at < bytes.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, bytes.size() - at);
    if (::pwrite(fd.get(), bytes.data() + at, n, static_cast<off_t>(at)) !=
        static_cast<ssize_t>(n))
      return Status(Errc::environment, "write " + target + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

int ScratchRoot::bad_variants() { return 8; }

Result<std::string> ScratchRoot::write_bad(int index) {
  const std::string name = "bad-" + std::to_string(index);
  const std::string dir = root() + "/" + name;
  if (Status s = fixture::write_adapter(dir, small_spec(static_cast<std::uint64_t>(index)));
      !s.ok())
    return s;
  const std::string config = dir + "/" + layout::kConfigFileName;
  const std::string weights = dir + "/" + layout::kWeightsFileName;
  const std::string good_weights = read_text(weights);
  auto config_json = nlohmann::json::parse(read_text(config));
  Status s;
  switch (index % bad_variants()) {
    case 0:  // truncated in the data section
      s = write_text(weights, good_weights.substr(0, good_weights.size() / 2));
      break;
    case 1:  // a header that is not JSON
      s = fixture::write_raw_safetensors(weights, "{not json", std::string(64, '\0'));
      break;
    case 2:  // offsets past the end of the data
      s = one_tensor_file(weights, "F16", 4096);
      break;
    case 3:  // adapter_config.json is not JSON
      s = write_text(config, "{\"r\": 4,");
      break;
    case 4: {  // adapter_config.json is missing
      std::error_code ec;
      fs::remove(config, ec);
      break;
    }
    case 5:  // a dtype the format does not define
      s = one_tensor_file(weights, "F13", 256);
      break;
    case 6:  // not a LoRA adapter
      config_json["peft_type"] = "PREFIX_TUNING";
      s = write_text(config, config_json.dump());
      break;
    default:  // the config's rank contradicts the tensors
      config_json["r"] = 8;
      s = write_text(config, config_json.dump());
      break;
  }
  if (!s.ok()) return s;
  return name;
}

void ScratchRoot::remove() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

}  // namespace genomed::stress
