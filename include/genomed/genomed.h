/* The C interface of the genomed client library (libgenomed-client), for
 * servers written in C, or in Rust, Go, Zig... through their C FFI. It wraps
 * the C++ client (genomed/client.h) and keeps its semantics: read that
 * header's comment for deadlines, broken connections and lease lifetimes.
 * docs/client-c-api.md has a walk-through.
 *
 *   genomed_client* client;
 *   genomed_error err;
 *   if (genomed_connect("/run/genomed.sock", NULL, &client, &err) != GENOMED_OK) ...
 *   genomed_lease* lease;
 *   if (genomed_acquire(client, "my-adapter", GENOMED_TIMEOUT_DEFAULT, &lease, &err) ...
 *   for (size_t i = 0; i < genomed_lease_tensor_count(lease); ++i) {
 *     genomed_tensor t;
 *     genomed_lease_tensor(lease, i, &t);   -- t.data: read-only, zero-copy
 *   }
 *   genomed_lease_release(lease);            -- the daemon may now evict it
 *   genomed_client_close(client);
 *
 * Errors. Every call that can fail returns a genomed_errc: GENOMED_OK (0) or
 * one of the codes of genomed/genomed_errc.h, the numbers of the wire
 * protocol (docs/protocol.md section 5), which never change.
 * genomed_errc_name() gives a code's stable name ("not_found"). Such calls
 * take a `genomed_error*` last; if it is not NULL it receives the code and a
 * message a person can act on. No call keeps an error in thread-local or
 * global state (goroutines and async tasks move between threads). No C++
 * exception ever crosses this interface.
 *
 * Lifetimes. A genomed_lease lives until genomed_lease_release(), which ends
 * the lease at the daemon and frees the handle; every pointer read from it
 * (tensor names, shapes, data, the config JSON) is valid until then. Leases
 * keep their connection open: genomed_client_close() may come before the
 * leases taken from it are released; the socket closes with the last of them.
 * When the daemon closes the connection (or dies) it releases its leases and
 * may reuse their memory: calls on the client then fail with
 * GENOMED_ERRC_NOT_CONNECTED and the views must not be read any more.
 *
 * Threads. A client may be used from several threads at once (requests on
 * one connection are serialized). A lease may be read from several threads;
 * releasing it must not race with reading it.
 *
 * Arguments. No argument a caller can check makes a call misbehave: a NULL
 * pointer, a count of 0 or above GENOMED_MAX_BATCH, an index past the end,
 * a NULL entry in an array, or a string longer than its limit below is
 * GENOMED_ERRC_BAD_REQUEST with a message naming the argument, and nothing
 * is sent. (Pointers that are not NULL must point where the declaration
 * says: a freed handle, a short array or an unterminated string cannot be
 * told from a good one.) Accessors that cannot report an error return 0,
 * "" or NULL-safe defaults for a NULL handle.
 *
 * fork(). A client and its leases belong to the process that connected. In
 * a child of fork() (a pre-fork server's worker), genomed_lease_release()
 * and genomed_client_close() of inherited handles free them and send
 * nothing: the parent's leases stay held, its connection and its lease-slot
 * page untouched. Every call that would send a request on an inherited
 * client returns GENOMED_ERRC_NOT_CONNECTED (the message says to connect
 * again in the child) and genomed_client_broken() is 1. Views of an
 * inherited lease are protected only by the parent's lease: take your own.
 */
#ifndef GENOMED_GENOMED_H
#define GENOMED_GENOMED_H

#include <stddef.h>
#include <stdint.h>

#include "genomed/genomed_errc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A connection to the daemon, with the arena mapped read-only. */
typedef struct genomed_client genomed_client;
/* One lease on one resident adapter. */
typedef struct genomed_lease genomed_lease;

/* GENOMED_OK or a GENOMED_ERRC_* code. */
typedef int32_t genomed_errc;

typedef struct genomed_error {
  genomed_errc code;   /* as returned */
  char message[1024];  /* NUL-terminated; truncated if longer; "" on success */
} genomed_error;

/* Limits of the arguments (longer or more: GENOMED_ERRC_BAD_REQUEST). */
#define GENOMED_MAX_BATCH 64          /* names of one genomed_acquire_batch */
#define GENOMED_MAX_NAME 512          /* bytes of an adapter name (the daemon's limit) */
#define GENOMED_MAX_TENSOR_NAME 1024  /* bytes of a tensor name (the layout's limit) */
#define GENOMED_MAX_CLIENT_NAME 1024  /* bytes of genomed_client_options.client_name */

/* Timeouts are milliseconds >= 0, or one of these. */
#define GENOMED_TIMEOUT_DEFAULT (-1) /* the client's option for that kind of call */
#define GENOMED_TIMEOUT_NONE (-2)    /* wait for ever */

/* Each timeout: milliseconds >= 0, GENOMED_TIMEOUT_NONE, or
 * GENOMED_TIMEOUT_DEFAULT for the default in parentheses. */
typedef struct genomed_client_options {
  const char* client_name;    /* logged by the daemon; NULL: "libgenomed" */
  int64_t connect_timeout_ms; /* connecting and the HELLO exchange (5000) */
  int64_t request_timeout_ms; /* other requests; also bounds writing a release (5000) */
  int64_t load_timeout_ms;    /* acquire, which may wait for a load and for memory (120000) */
} genomed_client_options;

/* Fills `options` with the defaults above. */
void genomed_client_options_init(genomed_client_options* options);

/* Connects to the daemon at `socket_path`, exchanges HELLO and maps the
 * arena. `options` NULL: the defaults. On success *client is a new handle to
 * close with genomed_client_close(); on failure it is NULL.
 * GENOMED_ERRC_NOT_CONNECTED: no daemon listens there; GENOMED_ERRC_TIMEOUT:
 * no answer within connect_timeout_ms. */
genomed_errc genomed_connect(const char* socket_path, const genomed_client_options* options,
                             genomed_client** client, genomed_error* error);

/* Closes the handle (NULL: nothing). The connection stays open while leases
 * taken from it live. */
void genomed_client_close(genomed_client* client);

/* 1 once the connection can serve no more requests (a timeout, a protocol
 * error, a lost connection, a child of fork()): connect again. 0 otherwise. */
int genomed_client_broken(const genomed_client* client);
/* The pid of the daemon; the size of its arena in bytes. */
uint64_t genomed_client_daemon_pid(const genomed_client* client);
uint64_t genomed_client_arena_bytes(const genomed_client* client);

/* Makes `name` resident (loading it if needed) and leases it. `timeout_ms`:
 * milliseconds, GENOMED_TIMEOUT_DEFAULT (load_timeout_ms) or
 * GENOMED_TIMEOUT_NONE. On failure *lease is NULL. */
genomed_errc genomed_acquire(genomed_client* client, const char* name, int64_t timeout_ms,
                             genomed_lease** lease, genomed_error* error);

/* Several adapters in one round trip, all or nothing: on success
 * leases[0..count-1] are new handles (leases[i] for names[i]), each released
 * on its own; on failure every leases[i] is NULL and nothing is held.
 * `count` must be 1..GENOMED_MAX_BATCH: otherwise GENOMED_ERRC_BAD_REQUEST
 * and `leases` is not written at all (the count says nothing about its
 * room). */
genomed_errc genomed_acquire_batch(genomed_client* client, const char* const* names, size_t count,
                                   int64_t timeout_ms, genomed_lease** leases,
                                   genomed_error* error);

/* RELOAD: loads `name`'s current files as a new generation beside the one
 * in use and swaps it in once verified; leases already held keep the old
 * bytes until released, every acquire after it gets the new generation. A
 * failed load leaves the old one serving and returns its error. On success
 * *generation (if not NULL) is the new generation. `timeout_ms` as for
 * genomed_acquire. */
genomed_errc genomed_reload(genomed_client* client, const char* name, int64_t timeout_ms,
                            uint64_t* generation, genomed_error* error);

/* PUBLISH: makes `config` (`config_len` bytes of an adapter_config.json)
 * and `weights` (`weights_len` bytes of an adapter_model.safetensors) the
 * adapter `name`, with no file: the bytes are copied into two sealed memfds
 * that genomed validates as files and swaps in as genomed_reload does (a
 * name not resident is loaded from them). Only genomed's own user, and
 * those given --publish-uid / --publish-gid, may publish
 * (GENOMED_PERMISSION_DENIED otherwise). On success *generation (if not
 * NULL) is the new generation. `timeout_ms` as for genomed_acquire. */
genomed_errc genomed_publish(genomed_client* client, const char* name, const void* config,
                             size_t config_len, const void* weights, size_t weights_len,
                             int64_t timeout_ms, uint64_t* generation, genomed_error* error);

/* Ends the lease and frees the handle (NULL: nothing). Never waits for
 * another thread's request on the same client. */
void genomed_lease_release(genomed_lease* lease);

/* The adapter's name; which load of it this copy is (generation); the lease
 * id (leases taken through one lease slot share it: docs/protocol.md §3.1). */
const char* genomed_lease_name(const genomed_lease* lease);
uint64_t genomed_lease_generation(const genomed_lease* lease);
uint64_t genomed_lease_id(const genomed_lease* lease);
/* The copy's content digest: 32 lowercase hex digits, NUL-terminated, of
 * XXH3-128 over its config and tensors (docs/protocol.md §8.2); equal for
 * equal content under any name or generation. Valid while the handle
 * lives; "" for NULL. */
const char* genomed_lease_digest(const genomed_lease* lease);
/* adapter_config.json as validated: compact JSON, every key of the file kept. */
const char* genomed_lease_config_json(const genomed_lease* lease);
/* The config's r and lora_alpha. */
uint32_t genomed_lease_lora_rank(const genomed_lease* lease);
double genomed_lease_lora_alpha(const genomed_lease* lease);

/* A read-only, zero-copy view of one tensor in the daemon's shared memory. */
typedef struct genomed_tensor {
  const char* name;        /* NUL-terminated */
  const char* dtype;       /* safetensors dtype name: "F16", "BF16", "F32", ... */
  uint32_t element_size;   /* bytes per element */
  uint32_t ndim;           /* entries of shape */
  const uint64_t* shape;   /* row-major dimensions */
  const void* data;        /* byte_size bytes, read-only (writing faults) */
  uint64_t byte_size;      /* product(shape) x element_size */
  uint64_t checksum;       /* XXH3-64 (seed 0) the load recorded for data */
} genomed_tensor;

/* Number of tensors; they are sorted by name. */
size_t genomed_lease_tensor_count(const genomed_lease* lease);
/* Tensor `index` (< tensor_count) into *tensor. GENOMED_ERRC_BAD_REQUEST if
 * the index is out of range. */
genomed_errc genomed_lease_tensor(const genomed_lease* lease, size_t index, genomed_tensor* tensor,
                                  genomed_error* error);
/* The tensor named `name` into *tensor; GENOMED_ERRC_NOT_FOUND if the
 * adapter has none of that name. */
genomed_errc genomed_lease_find_tensor(const genomed_lease* lease, const char* name,
                                       genomed_tensor* tensor, genomed_error* error);

/* Module kinds (genomed::ModuleKind). */
#define GENOMED_MODULE_LINEAR 0
#define GENOMED_MODULE_EMBEDDING 1
#define GENOMED_MODULE_CONV 2
/* A tensor index that is absent. */
#define GENOMED_NO_TENSOR ((size_t)-1)

/* One LoRA module and the factors PEFT applies:
 * output += scaling * B(A(x)). Tensors are indices for genomed_lease_tensor. */
typedef struct genomed_module {
  const char* path; /* in the base model, e.g. "model.layers.0.self_attn.q_proj" */
  int32_t kind;     /* GENOMED_MODULE_* */
  uint32_t rank;    /* effective rank (rank_pattern, else r) */
  double alpha;     /* effective alpha (alpha_pattern, else lora_alpha) */
  double scaling;   /* alpha / rank, or alpha / sqrt(rank) with use_rslora */
  size_t a;         /* lora_A */
  size_t b;         /* lora_B */
  size_t magnitude; /* DoRA's magnitude vector, or GENOMED_NO_TENSOR */
  size_t lora_bias; /* B's bias, or GENOMED_NO_TENSOR */
} genomed_module;

/* Number of LoRA modules; they are sorted by path. */
size_t genomed_lease_module_count(const genomed_lease* lease);
genomed_errc genomed_lease_module(const genomed_lease* lease, size_t index, genomed_module* module,
                                  genomed_error* error);

/* Hashes every tensor again and compares it with the checksum its load
 * recorded. GENOMED_ERRC_LAYOUT_INVALID names the first tensor that differs. */
genomed_errc genomed_lease_verify(const genomed_lease* lease, genomed_error* error);

/* The stable name of a code ("not_found"); "unknown" for a number this
 * library does not know. Never NULL; static storage. */
const char* genomed_errc_name(genomed_errc code);

/* The library's version, "MAJOR.MINOR.PATCH". */
const char* genomed_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GENOMED_GENOMED_H */
