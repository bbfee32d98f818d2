/* Compiled as C (C11): genomed.h is a C header, and its types, macros and
 * functions are usable from C. Called by c_api_test.cc. */
#include <string.h>

#include "genomed/genomed.h"

int genomed_c_header_check(void) {
  genomed_client_options options;
  genomed_client_options_init(&options);
  genomed_tensor tensor = {0};
  genomed_module module = {0};
  genomed_error error = {0};
  int failures = 0;
  failures += options.load_timeout_ms != 120000;
  failures += GENOMED_TIMEOUT_NONE >= 0 || GENOMED_TIMEOUT_DEFAULT >= 0;
  failures += strcmp(genomed_errc_name(GENOMED_ERRC_NOT_FOUND), "not_found") != 0;
  failures += GENOMED_NO_TENSOR != (size_t)-1;
  failures += genomed_lease_tensor(NULL, 0, &tensor, &error) != GENOMED_ERRC_BAD_REQUEST;
  failures += error.code != GENOMED_ERRC_BAD_REQUEST;
  failures += genomed_lease_module(NULL, 0, &module, NULL) != GENOMED_ERRC_BAD_REQUEST;
  return failures;
}
