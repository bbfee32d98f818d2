// Reads tensors straight from a safetensors file with an independent minimal
// parser (nlohmann-json), so integration tests compare what clients see with
// the file's bytes without trusting genomed's own parser.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"

namespace genomed::testing {

struct FileTensor {
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::string bytes;
  std::uint64_t data_begin = 0;  // offset in the file's data section
};

inline std::map<std::string, FileTensor> read_file_tensors(const std::string& path) {
  const std::string file = read_file(path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<unsigned char>(file[static_cast<std::size_t>(i)]);
  const auto header = nlohmann::json::parse(file.substr(8, n));
  std::map<std::string, FileTensor> out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    FileTensor t;
    t.dtype = entry["dtype"].get<std::string>();
    t.shape = entry["shape"].get<std::vector<std::uint64_t>>();
    const auto begin = entry["data_offsets"][0].get<std::uint64_t>();
    const auto end = entry["data_offsets"][1].get<std::uint64_t>();
    t.bytes = file.substr(8 + n + begin, end - begin);
    t.data_begin = begin;
    out[name] = std::move(t);
  }
  return out;
}

}  // namespace genomed::testing
