#include "ipc/wire.h"

namespace genomed::ipc {

void MapWriter::key(std::string_view k) {
  packer_.pack_str(static_cast<std::uint32_t>(k.size()));
  packer_.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
  ++count_;
}

MapWriter& MapWriter::put(std::string_view k, std::string_view value) {
  key(k);
  packer_.pack_str(static_cast<std::uint32_t>(value.size()));
  packer_.pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
  return *this;
}

MapWriter& MapWriter::put(std::string_view k, std::uint64_t value) {
  key(k);
  packer_.pack_uint64(value);
  return *this;
}

MapWriter& MapWriter::put(std::string_view k, std::int64_t value) {
  key(k);
  packer_.pack_int64(value);
  return *this;
}

MapWriter& MapWriter::put(std::string_view k, bool value) {
  key(k);
  if (value)
    packer_.pack_true();
  else
    packer_.pack_false();
  return *this;
}

MapWriter& MapWriter::put(std::string_view k, double value) {
  key(k);
  packer_.pack_double(value);
  return *this;
}

MapWriter& MapWriter::put(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  packer_.pack_array(static_cast<std::uint32_t>(values.size()));
  for (const auto& v : values) {
    packer_.pack_str(static_cast<std::uint32_t>(v.size()));
    packer_.pack_str_body(v.data(), static_cast<std::uint32_t>(v.size()));
  }
  return *this;
}

MapWriter& MapWriter::put(std::string_view k, const std::vector<std::uint64_t>& values) {
  key(k);
  packer_.pack_array(static_cast<std::uint32_t>(values.size()));
  for (auto v : values) packer_.pack_uint64(v);
  return *this;
}

MapWriter& MapWriter::put_nil(std::string_view k) {
  key(k);
  packer_.pack_nil();
  return *this;
}

MapWriter& MapWriter::put_bin(std::string_view k, std::string_view bytes) {
  key(k);
  packer_.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  packer_.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
  return *this;
}

MapWriter& MapWriter::put_packed(std::string_view k, std::string_view packed) {
  key(k);
  body_.write(packed.data(), packed.size());
  return *this;
}

MapWriter& MapWriter::put_packed_array(std::string_view k, const std::vector<std::string>& packed) {
  key(k);
  packer_.pack_array(static_cast<std::uint32_t>(packed.size()));
  for (const auto& p : packed) body_.write(p.data(), p.size());
  return *this;
}

std::string MapWriter::finish() const {
  msgpack::sbuffer header;
  msgpack::packer<msgpack::sbuffer>(header).pack_map(count_);
  std::string out;
  out.reserve(header.size() + body_.size());
  out.append(header.data(), header.size());
  out.append(body_.data(), body_.size());
  return out;
}

std::string_view type_name(const msgpack::object& obj) {
  switch (obj.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
      return "unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER:
      return "negative integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "string";
    case msgpack::type::BIN:
      return "binary";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "extension";
  }
  return "unknown";
}

namespace {

Status wrong_type(std::string_view field, std::string_view want, const msgpack::object& got) {
  return Status(Errc::bad_request, "field '" + std::string(field) + "': expected " +
                                       std::string(want) + ", got " + std::string(type_name(got)));
}

Result<std::string> as_str(std::string_view field, const msgpack::object& o) {
  if (o.type != msgpack::type::STR) return wrong_type(field, "string", o);
  return std::string(o.via.str.ptr, o.via.str.size);
}

Result<std::uint64_t> as_u64(std::string_view field, const msgpack::object& o) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return wrong_type(field, "unsigned integer", o);
  return o.via.u64;
}

}  // namespace

const msgpack::object* MapView::find(std::string_view key) const {
  const auto& m = obj_->via.map;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const msgpack::object& k = m.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      return &m.ptr[i].val;
    }
  }
  return nullptr;
}

#define GENOMED_FIND_OR_MISSING(key)                                              \
  const msgpack::object* o = find(key);                                           \
  if (o == nullptr) {                                                             \
    return Status(Errc::bad_request, "missing field '" + std::string(key) + "'"); \
  }

Result<std::string> MapView::str(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  return as_str(key, *o);
}

bool MapView::is_nil(std::string_view key) const {
  const msgpack::object* o = find(key);
  return o != nullptr && o->type == msgpack::type::NIL;
}

Result<std::string> MapView::bin(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  if (o->type != msgpack::type::BIN) return wrong_type(key, "binary", *o);
  return std::string(o->via.bin.ptr, o->via.bin.size);
}

Result<std::uint64_t> MapView::u64(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  return as_u64(key, *o);
}

Result<std::int64_t> MapView::i64(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
  if (o->type == msgpack::type::POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    return static_cast<std::int64_t>(o->via.u64);
  }
  return wrong_type(key, "integer", *o);
}

Result<double> MapView::f64(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  if (o->type == msgpack::type::FLOAT32 || o->type == msgpack::type::FLOAT64) return o->via.f64;
  if (o->type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o->via.u64);
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return static_cast<double>(o->via.i64);
  return wrong_type(key, "number", *o);
}

Result<bool> MapView::boolean(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  if (o->type != msgpack::type::BOOLEAN) return wrong_type(key, "boolean", *o);
  return o->via.boolean;
}

Result<MapView> MapView::map(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  if (o->type != msgpack::type::MAP) return wrong_type(key, "map", *o);
  return MapView(o);
}

Result<ArrayView> MapView::array(std::string_view key) const {
  GENOMED_FIND_OR_MISSING(key);
  if (o->type != msgpack::type::ARRAY) return wrong_type(key, "array", *o);
  return ArrayView(o, std::string(key));
}

#undef GENOMED_FIND_OR_MISSING

Result<MapView> ArrayView::map_at(std::size_t i) const {
  const msgpack::object& o = obj_->via.array.ptr[i];
  if (o.type != msgpack::type::MAP)
    return wrong_type(field_ + "[" + std::to_string(i) + "]", "map", o);
  return MapView(&o);
}

Result<std::string> ArrayView::str_at(std::size_t i) const {
  return as_str(field_ + "[" + std::to_string(i) + "]", obj_->via.array.ptr[i]);
}

Result<std::vector<std::string>> ArrayView::strings() const {
  std::vector<std::string> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) {
    GENOMED_ASSIGN_OR_RETURN(std::string s, str_at(i));
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::uint64_t> ArrayView::u64_at(std::size_t i) const {
  return as_u64(field_ + "[" + std::to_string(i) + "]", obj_->via.array.ptr[i]);
}

Result<Message> Message::parse(std::string_view body, const DecodeLimits& limits) {
  Message m;
  try {
    std::size_t offset = 0;
    const msgpack::unpack_limit limit(limits.max_array, limits.max_map, limits.max_str,
                                      limits.max_str, limits.max_str, limits.max_depth);
    auto handle = std::make_shared<msgpack::object_handle>(
        msgpack::unpack(body.data(), body.size(), offset, nullptr, nullptr, limit));
    if (offset != body.size()) {
      return Status(Errc::malformed_frame, std::to_string(body.size() - offset) +
                                               " bytes follow the msgpack object in the frame");
    }
    if (handle->get().type != msgpack::type::MAP) {
      return Status(
          Errc::malformed_frame,
          "frame body is a msgpack " + std::string(type_name(handle->get())) + ", expected a map");
    }
    m.handle_ = std::move(handle);
  } catch (const std::exception& e) {
    return Status(Errc::malformed_frame,
                  std::string("frame body is not valid msgpack within limits: ") + e.what());
  }
  return m;
}

}  // namespace genomed::ipc
