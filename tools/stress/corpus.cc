#include "tools/stress/corpus.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tools/stress/digest.h"

namespace genomed::stress {
namespace {

Status unreadable(const std::string& path, const std::string& why) {
  return Status(Errc::file_unreadable, path + ": " + why);
}

}  // namespace

Result<VersionTruth> read_truth(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable(path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 8) {
    ::close(fd);
    return unreadable(path, "shorter than a safetensors length prefix");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return unreadable(path, std::string("mmap: ") + std::strerror(errno));
  const auto* bytes = static_cast<const std::byte*>(map);
  struct Unmap {
    void* p;
    std::uint64_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{map, size};

  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  if (header_len > size - 8) return unreadable(path, "header length past the end of the file");
  const std::uint64_t data = 8 + header_len;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8),
                                   reinterpret_cast<const char*>(bytes + data));
  } catch (const std::exception& e) {
    return unreadable(path, std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) return unreadable(path, "header is not a JSON object");
  VersionTruth out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      TensorTruth t;
      t.dtype = entry.at("dtype").get<std::string>();
      t.shape = entry.at("shape").get<std::vector<std::uint64_t>>();
      const auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || data + offsets[1] > size)
        return unreadable(path, "tensor " + name + ": offsets out of the file");
      t.size = offsets[1] - offsets[0];
      t.digest = digest({bytes + data + offsets[0], t.size});
      out.emplace(name, std::move(t));
    } catch (const std::exception& e) {
      return unreadable(path, "tensor " + name + ": " + e.what());
    }
  }
  if (out.empty()) return unreadable(path, "no tensors");
  return out;
}

const AdapterTruth* Corpus::find(const std::string& name) const {
  for (const auto& a : good_)
    if (a.name == name) return &a;
  return nullptr;
}

std::uint64_t Corpus::largest_version_bytes() const {
  std::uint64_t most = 0;
  for (const auto& a : good_) {
    for (const auto& v : a.versions) {
      std::uint64_t n = 0;
      for (const auto& [name, t] : v) n += t.size;
      most = std::max(most, n);
    }
  }
  return most;
}

}  // namespace genomed::stress
