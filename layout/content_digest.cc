#include "layout/content_digest.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdio>

namespace genomed::layout {

namespace {

void put_le(std::string* out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

std::string ContentDigest::hex() const {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(high),
                static_cast<unsigned long long>(low));
  return buf;
}

std::string digest_manifest(const ResidentLayout& layout) {
  std::string m = "GNMDDIG1";
  put_le(&m, layout.contract.size(), 4);
  m += layout.contract;
  put_le(&m, layout.tensors.size(), 4);
  for (const ResidentTensor& t : layout.tensors) {
    put_le(&m, t.name.size(), 2);
    m += t.name;
    put_le(&m, static_cast<std::uint8_t>(t.dtype), 1);
    put_le(&m, t.shape.size(), 1);
    for (const std::uint64_t d : t.shape) put_le(&m, d, 8);
    put_le(&m, t.length, 8);
    put_le(&m, t.checksum, 8);
  }
  return m;
}

ContentDigest content_digest(const ResidentLayout& layout) {
  const std::string m = digest_manifest(layout);
  const XXH128_hash_t h = XXH3_128bits(m.data(), m.size());
  return ContentDigest{h.high64, h.low64};
}

}  // namespace genomed::layout
