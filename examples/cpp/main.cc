// Leases one adapter through the C++ client and prints its tensors:
//   genomed-cpp-example SOCKET ADAPTER
#include <cstdio>
#include <string>

#include "genomed/client.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SOCKET ADAPTER\n", argv[0]);
    return 2;
  }
  auto client = genomed::Client::connect(argv[1], "genomed-cpp-example");
  if (!client) {
    std::fprintf(stderr, "connect: %s\n", client.status().to_string().c_str());
    return 1;
  }
  auto lease = client->acquire(argv[2]);
  if (!lease) {
    std::fprintf(stderr, "acquire: %s\n", lease.status().to_string().c_str());
    return 1;
  }
  std::printf("adapter %s generation %llu rank %u alpha %g\n", lease->name().c_str(),
              static_cast<unsigned long long>(lease->generation()), lease->lora_rank(),
              lease->lora_alpha());
  for (const genomed::TensorView& t : lease->tensors()) {
    std::string shape;
    for (const auto d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    std::printf("tensor %.*s %.*s [%s] %zu bytes\n", static_cast<int>(t.name.size()),
                t.name.data(), static_cast<int>(t.dtype.size()), t.dtype.data(), shape.c_str(),
                t.data.size());
  }
  for (const genomed::LoraModule& m : lease->modules()) {
    std::printf("module %.*s rank %u scaling %g\n", static_cast<int>(m.path.size()),
                m.path.data(), m.rank, m.scaling);
  }
  if (const genomed::Status verified = lease->verify(); !verified.ok()) {
    std::fprintf(stderr, "verify: %s\n", verified.to_string().c_str());
    return 1;
  }
  std::printf("verified\n");
  return 0;  // ~Lease releases the lease, ~Client closes the connection
}
