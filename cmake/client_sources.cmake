# The C++ client library's sources (paths relative to the repository root):
# the one list both builds of it compile, so they cannot drift apart (they
# did twice while python/CMakeLists.txt kept a copy):
#   - CMakeLists.txt: genomed_client, genomed_ipc, genomed_layout and the
#     client's part of genomed_common (libgenomed-client, genomectl, tests);
#   - python/CMakeLists.txt: genomed._native, which compiles them into the
#     extension itself (GENOMED_BINDING_SOURCES).
# A source the client starts to need goes into its list here; a common/ file
# it starts to call must move from GENOMED_COMMON_DAEMON_SOURCES to
# GENOMED_COMMON_CLIENT_SOURCES. python/CMakeLists.txt links the binding's
# objects once more with -Wl,--no-undefined (genomed_binding_closure), so a
# file missing here fails `pip install ./python` at build time instead of
# `import genomed._native` at run time.

# client/ as the binding compiles it; the top-level genomed_client adds the
# C interface (GENOMED_CLIENT_C_API_SOURCES), which Python does not use.
set(GENOMED_CLIENT_SOURCES
  client/fork_guard.cc
  client/transport.cc
  client/replies.cc
  client/header_cache.cc
  client/slot_cache.cc
  client/connection.cc
  client/connect.cc
  client/lease.cc
  client/client.cc
  client/sealed_memfd.cc
)
set(GENOMED_CLIENT_C_API_SOURCES client/c_api.cc)

# ipc/: framing, fd passing and the msgpack protocol codec.
set(GENOMED_IPC_SOURCES
  ipc/framing.cc
  ipc/protocol.cc
  ipc/wire.cc
)

# layout/: the resident layout, the contract's types and codec, dtypes,
# tensor checksums, the content digest.
set(GENOMED_LAYOUT_SOURCES
  layout/dtype.cc
  layout/contract.cc
  layout/resident_layout.cc
  layout/fill_parts.cc
  layout/tensor_checksum.cc
  layout/content_digest.cc
)

# common/: the part the client calls, and the rest (the daemon's).
set(GENOMED_COMMON_CLIENT_SOURCES
  common/errc.cc
  common/safe_text.cc
  common/huge_pages.cc
)
set(GENOMED_COMMON_DAEMON_SOURCES
  common/memory_limit.cc
  common/open_beneath.cc
  common/size_parse.cc
  common/duration_parse.cc
  common/wait_clock.cc
  common/run_clock.cc
)

# Everything genomed._native compiles of the C++ side.
set(GENOMED_BINDING_SOURCES ${GENOMED_CLIENT_SOURCES} ${GENOMED_IPC_SOURCES}
  ${GENOMED_LAYOUT_SOURCES} ${GENOMED_COMMON_CLIENT_SOURCES})
