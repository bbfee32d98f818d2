/* Leases one adapter through the C interface and prints its tensors:
 *   genomed-c-example SOCKET ADAPTER */
#include <inttypes.h>
#include <stdio.h>

#include "genomed/genomed.h"

static int report(const char* what, const genomed_error* err) {
  fprintf(stderr, "%s: %s (%d): %s\n", what, genomed_errc_name(err->code), (int)err->code,
          err->message);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SOCKET ADAPTER\n", argv[0]);
    return 2;
  }
  genomed_error err;
  genomed_client_options options;
  genomed_client_options_init(&options);
  options.client_name = "genomed-c-example";

  genomed_client* client = NULL;
  if (genomed_connect(argv[1], &options, &client, &err) != GENOMED_OK) {
    return report("connect", &err);
  }
  genomed_lease* lease = NULL;
  if (genomed_acquire(client, argv[2], GENOMED_TIMEOUT_DEFAULT, &lease, &err) != GENOMED_OK) {
    genomed_client_close(client);
    return report("acquire", &err);
  }
  printf("adapter %s generation %" PRIu64 " rank %" PRIu32 " alpha %g (libgenomed-client %s)\n",
         genomed_lease_name(lease), genomed_lease_generation(lease),
         genomed_lease_lora_rank(lease), genomed_lease_lora_alpha(lease), genomed_version());
  printf("config %s\n", genomed_lease_config_json(lease));

  int status = 0;
  for (size_t i = 0; i < genomed_lease_tensor_count(lease); ++i) {
    genomed_tensor t;
    if (genomed_lease_tensor(lease, i, &t, &err) != GENOMED_OK) {
      status = report("tensor", &err);
      break;
    }
    printf("tensor %s %s [", t.name, t.dtype);
    for (uint32_t d = 0; d < t.ndim; ++d) printf("%s%" PRIu64, d ? "," : "", t.shape[d]);
    printf("] %" PRIu64 " bytes\n", t.byte_size);
  }
  for (size_t i = 0; status == 0 && i < genomed_lease_module_count(lease); ++i) {
    genomed_module m;
    if (genomed_lease_module(lease, i, &m, &err) != GENOMED_OK) {
      status = report("module", &err);
      break;
    }
    printf("module %s rank %" PRIu32 " scaling %g\n", m.path, m.rank, m.scaling);
  }
  if (status == 0) {
    if (genomed_lease_verify(lease, &err) != GENOMED_OK) {
      status = report("verify", &err);
    } else {
      printf("verified\n");
    }
  }
  genomed_lease_release(lease);
  genomed_client_close(client);
  return status;
}
