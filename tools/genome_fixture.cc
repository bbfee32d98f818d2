// genome-fixture: writes deterministic PEFT LoRA adapters for tests, demos and
// benchmarks, so none of them needs real model weights.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/size_parse.h"
#include "tools/fixture/fixture.h"

namespace {

using genomed::fixture::AdapterSpec;
namespace layout = genomed::layout;

constexpr const char* kUsage = R"(usage: genome-fixture --out DIR [options]

Writes a PEFT-layout LoRA adapter (adapter_config.json + adapter_model.safetensors)
whose tensor bytes are a deterministic function of the seed.

options:
  --out DIR            directory to write (created with parents); required
  --rank R             LoRA rank, >= 1 (default 8)
  --layers L           number of transformer layers, >= 1 (default 2)
  --hidden H           hidden size, >= 1 (default 64)
  --dtype T            tensor dtype: BOOL U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16
                       F16 BF16 I32 U32 F32 F64 I64 U64 (default F16)
  --modules A,B,...    target modules (default q_proj,v_proj)
  --alpha A            lora_alpha, > 0 (default 16)
  --seed S             seed of the tensor bytes (default 1)
  --count N            write N >= 1 adapters DIR/NAME0 .. DIR/NAME{N-1}, seeds
                       S .. S+N-1
  --prefix NAME        adapter name prefix with --count (default "adapter")
  -h, --help           print this help

Each tensor is rank x hidden elements; there are layers x modules x 2 tensors.
Exit status: 0 on success, 1 if writing failed, 2 on bad usage.
)";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "genome-fixture: %s\n(see genome-fixture --help)\n", msg.c_str());
  return 2;
}

template <class T>
std::optional<T> parse_uint(std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::vector<std::string> split_modules(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = std::min(s.find(',', start), s.size());
    out.emplace_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

struct Options {
  std::string out;
  AdapterSpec spec;
  std::optional<std::uint32_t> count;
  std::string prefix = "adapter";
};

// Returns an exit code when the program should stop (help or a bad flag).
std::optional<int> parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> inline_value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    auto value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (flag.rfind("--", 0) != 0 ||
        !std::strstr(" --out --rank --layers --hidden --dtype --modules --alpha --seed --count "
                     "--prefix ",
                     (" " + flag + " ").c_str())) {
      return usage_error("unknown argument '" + std::string(argv[i]) + "'");
    }
    const auto v = value();
    if (!v) return usage_error(flag + " needs a value");
    const auto bad = [&](const char* what) {
      return usage_error(flag + " '" + *v + "' is not " + what);
    };
    if (flag == "--out") {
      if (v->empty()) return bad("a directory");
      o.out = *v;
    } else if (flag == "--rank" || flag == "--hidden") {
      const auto n = parse_uint<std::uint32_t>(*v);
      if (!n || *n == 0) return bad("an integer >= 1");
      (flag == "--rank" ? o.spec.rank : o.spec.hidden) = *n;
    } else if (flag == "--layers") {
      const auto n = parse_uint<std::uint32_t>(*v);
      if (!n || *n == 0) return bad("an integer >= 1");
      o.spec.layers = *n;
    } else if (flag == "--dtype") {
      const auto t = layout::dtype_from_name(*v);
      if (!t) return bad("a safetensors dtype");
      o.spec.dtype = *t;
    } else if (flag == "--modules") {
      o.spec.target_modules = split_modules(*v);
      for (const auto& m : o.spec.target_modules) {
        if (m.empty()) return bad("a comma-separated list of non-empty names");
      }
    } else if (flag == "--alpha") {
      const auto a = parse_double(*v);
      if (!a || !(*a > 0) || !std::isfinite(*a)) return bad("a positive number");
      o.spec.lora_alpha = *a;
    } else if (flag == "--seed") {
      const auto s = parse_uint<std::uint64_t>(*v);
      if (!s) return bad("a non-negative integer");
      o.spec.seed = *s;
    } else if (flag == "--count") {
      const auto n = parse_uint<std::uint32_t>(*v);
      if (!n || *n == 0) return bad("an integer >= 1");
      o.count = *n;
    } else if (flag == "--prefix") {
      if (v->empty() || v->find('/') != std::string::npos) return bad("a plain file name");
      o.prefix = *v;
    }
  }
  if (o.out.empty()) return usage_error("--out DIR is required");
  return std::nullopt;
}

bool write_one(const std::string& dir, const AdapterSpec& spec) {
  const genomed::Status s = genomed::fixture::write_adapter(dir, spec);
  if (!s.ok()) {
    std::fprintf(stderr, "genome-fixture: %s\n", s.to_string().c_str());
    return false;
  }
  const std::uint64_t tensors = std::uint64_t{spec.layers} * spec.target_modules.size() * 2;
  const std::uint64_t bytes = genomed::fixture::weights_file_size(spec);
  std::printf("wrote %s: %llu tensors, %s, %llu bytes of adapter_model.safetensors (seed %llu)\n",
              dir.c_str(), static_cast<unsigned long long>(tensors),
              std::string(layout::dtype_name(spec.dtype)).c_str(),
              static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(spec.seed));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const auto code = parse_args(argc, argv, o)) return *code;
  if (!o.count) return write_one(o.out, o.spec) ? 0 : 1;
  std::uint64_t total = 0;
  for (std::uint32_t k = 0; k < *o.count; ++k) {
    AdapterSpec spec = o.spec;
    spec.seed = o.spec.seed + k;
    if (!write_one(o.out + "/" + o.prefix + std::to_string(k), spec)) return 1;
    total += genomed::fixture::weights_file_size(spec);
  }
  std::printf("wrote %u adapters under %s, %s in total\n", *o.count, o.out.c_str(),
              genomed::format_size(total).c_str());
  return 0;
}
