// Small typed layer over msgpack-c: build a map key by key, and read fields of
// an untrusted map with type checks that become Errc::bad_request messages
// naming the field. Every decode goes through unpack limits sized to the
// protocol, so a hostile frame cannot make msgpack-c allocate gigabytes.
#pragma once

#include <cstdint>
#include <memory>
#include <msgpack.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace genomed::ipc {

// Builds one msgpack map. Values are packed as they come; finish() prefixes
// the map header once the count is known.
class MapWriter {
 public:
  MapWriter() : packer_(body_) {}
  MapWriter(const MapWriter&) = delete;
  MapWriter& operator=(const MapWriter&) = delete;

  MapWriter& put(std::string_view key, std::string_view value);
  MapWriter& put(std::string_view key, const char* value) {
    return put(key, std::string_view(value));
  }
  MapWriter& put(std::string_view key, std::uint64_t value);
  MapWriter& put(std::string_view key, std::int64_t value);
  MapWriter& put(std::string_view key, std::uint32_t value) {
    return put(key, std::uint64_t{value});
  }
  MapWriter& put(std::string_view key, int value) { return put(key, std::int64_t{value}); }
  MapWriter& put(std::string_view key, bool value);
  MapWriter& put(std::string_view key, double value);
  MapWriter& put(std::string_view key, const std::vector<std::string>& values);
  MapWriter& put(std::string_view key, const std::vector<std::uint64_t>& values);
  MapWriter& put_nil(std::string_view key);
  // Raw bytes (msgpack bin), for payloads that are not text.
  MapWriter& put_bin(std::string_view key, std::string_view bytes);
  // A value that is already one packed msgpack object (a nested map or array).
  MapWriter& put_packed(std::string_view key, std::string_view packed);
  // An array of already packed objects.
  MapWriter& put_packed_array(std::string_view key, const std::vector<std::string>& packed);

  std::string finish() const;

 private:
  void key(std::string_view k);
  msgpack::sbuffer body_;
  msgpack::packer<msgpack::sbuffer> packer_;
  std::uint32_t count_ = 0;
};

// Limits for one decode: the largest array, map, string and nesting depth.
struct DecodeLimits {
  std::size_t max_array = 4096;
  std::size_t max_map = 256;
  std::size_t max_str = 64 * 1024;
  std::size_t max_depth = 8;
};
inline constexpr DecodeLimits kRequestLimits{};
inline constexpr DecodeLimits kReplyLimits{1u << 20, 1u << 16, 1u << 20, 8};

class ArrayView;

// A non-owning view of one msgpack map inside a Message.
class MapView {
 public:
  explicit MapView(const msgpack::object* obj) : obj_(obj) {}
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // True when the key is present with a nil value.
  bool is_nil(std::string_view key) const;
  Result<std::string> bin(std::string_view key) const;
  // The value of `key`, unchecked; nullptr when absent.
  const msgpack::object* get(std::string_view key) const { return find(key); }
  Result<std::string> str(std::string_view key) const;
  Result<std::uint64_t> u64(std::string_view key) const;
  Result<std::int64_t> i64(std::string_view key) const;
  Result<double> f64(std::string_view key) const;
  Result<bool> boolean(std::string_view key) const;
  Result<MapView> map(std::string_view key) const;
  Result<ArrayView> array(std::string_view key) const;
  // Every key with its value, for generic printing (stats).
  const msgpack::object_map& raw() const { return obj_->via.map; }

 private:
  const msgpack::object* find(std::string_view key) const;
  const msgpack::object* obj_;
};

class ArrayView {
 public:
  ArrayView(const msgpack::object* obj, std::string field) : obj_(obj), field_(std::move(field)) {}
  std::size_t size() const { return obj_->via.array.size; }
  Result<MapView> map_at(std::size_t i) const;
  Result<std::string> str_at(std::size_t i) const;
  Result<std::uint64_t> u64_at(std::size_t i) const;
  // Every element as a string; the first that is not one is an error.
  Result<std::vector<std::string>> strings() const;
  const msgpack::object& at(std::size_t i) const { return obj_->via.array.ptr[i]; }

 private:
  const msgpack::object* obj_;
  std::string field_;
};

// An owned, decoded msgpack map.
class Message {
 public:
  // Errc::malformed_frame if the body is not exactly one msgpack map within
  // `limits`.
  static Result<Message> parse(std::string_view body, const DecodeLimits& limits);
  MapView root() const { return MapView(&handle_->get()); }

 private:
  std::shared_ptr<msgpack::object_handle> handle_;
};

// The textual name of a msgpack object's type, for error messages.
std::string_view type_name(const msgpack::object& obj);

}  // namespace genomed::ipc
