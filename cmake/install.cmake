# What `cmake --install` puts where (and what cpack packages, cmake/packaging.cmake):
#   bin/                    genomed, genome-worker (next to genomed, where it
#                           looks by default), genomectl, genome-fixture, genome-stress
#   include/genomed/        the public headers: client.h (C++), genomed.h (C)
#   lib/libgenomed-client.so.X.Y.Z, .so.X, .so, lib/libgenomed-client.a
#   lib/cmake/genomed/      genomedConfig.cmake: find_package(genomed) gives
#                           genomed::client (shared), genomed::client_static
#   lib/pkgconfig/genomed.pc
#   share/doc/genomed/      README.md and docs/
# Included from CMakeLists.txt once every target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# ---- libgenomed-client ---------------------------------------------------------
# The in-tree client (genomed_client and the static libraries it links:
# ipc, layout, common) is built position-independent, and both installed
# libraries are made of those objects, so they are self-contained: a
# consumer links one file. They hold no parser of untrusted files (worker/format)
# and no nlohmann_json; genomed_check_client_links() below refuses a
# configuration in which the client's link graph reaches either, and the test
# Install.ClientLibrary checks the built files themselves.
set(GENOMED_CLIENT_PARTS genomed_client genomed_ipc genomed_layout genomed_common)
set_target_properties(${GENOMED_CLIENT_PARTS} PROPERTIES POSITION_INDEPENDENT_CODE ON)

# The SONAME's number (libgenomed-client.so.0): bump on every ABI break of
# genomed.h or of the C++ classes of client.h.
set(GENOMED_CLIENT_SOVERSION 0)

function(genomed_check_client_links)
  set(forbidden genomed_format nlohmann_json::nlohmann_json nlohmann_json)
  set(pending genomed_client)
  set(seen "")
  while(pending)
    list(POP_FRONT pending target)
    if(target IN_LIST seen OR NOT TARGET ${target})
      continue()
    endif()
    list(APPEND seen ${target})
    set(deps "")
    foreach(property LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(value ${target} ${property})
      if(value)
        list(APPEND deps ${value})
      endif()
    endforeach()
    foreach(dep IN LISTS deps)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
      if(dep IN_LIST forbidden)
        message(FATAL_ERROR "The client library must not link ${dep} (reached through "
          "${target}): libgenomed-client is linked into inference servers and holds neither "
          "the parsers of untrusted files nor nlohmann_json. See cmake/install.cmake.")
      endif()
      list(APPEND pending ${dep})
    endforeach()
  endwhile()
endfunction()
genomed_check_client_links()

set(client_objects "")
foreach(part IN LISTS GENOMED_CLIENT_PARTS)
  list(APPEND client_objects $<TARGET_OBJECTS:${part}>)
endforeach()

foreach(kind SHARED STATIC)
  string(TOLOWER ${kind} lower)
  set(target genomed_client_${lower})
  add_library(${target} ${kind} ${client_objects})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME genomed-client LINKER_LANGUAGE CXX)
  target_include_directories(${target} INTERFACE
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${GENOMED_GENERATED_INCLUDE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} INTERFACE cxx_std_20)
  target_link_libraries(${target} PRIVATE Threads::Threads)
endforeach()
set_target_properties(genomed_client_shared PROPERTIES
  EXPORT_NAME client
  VERSION ${PROJECT_VERSION}
  SOVERSION ${GENOMED_CLIENT_SOVERSION}
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/genomed-client.map)
set_target_properties(genomed_client_static PROPERTIES EXPORT_NAME client_static)
target_link_options(genomed_client_shared PRIVATE
  "LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/genomed-client.map")
if(NOT GENOMED_SANITIZE AND NOT GENOMED_FUZZ)
  # Every symbol resolved inside the library or its NEEDED system libraries
  # (sanitizer runtimes are resolved only by the executable).
  target_link_options(genomed_client_shared PRIVATE "LINKER:--no-undefined")
endif()
add_library(genomed::client ALIAS genomed_client_shared)
add_library(genomed::client_static ALIAS genomed_client_static)

# ---- install rules -------------------------------------------------------------
install(TARGETS genomed genome-worker genomectl genome-fixture genome-stress
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS genomed_client_shared genomed_client_static EXPORT genomedTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/genomed
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${GENOMED_GENERATED_INCLUDE_DIR}/genomed/genomed_errc.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/genomed)

set(GENOMED_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/genomed)
install(EXPORT genomedTargets NAMESPACE genomed:: DESTINATION ${GENOMED_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/genomedConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/genomedConfig.cmake INSTALL_DESTINATION ${GENOMED_CMAKE_DIR})
# 0.x: a new minor version may break the API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/genomedConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/genomedConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/genomedConfigVersion.cmake DESTINATION ${GENOMED_CMAKE_DIR})

# genomed.pc finds its prefix relative to its own directory (${pcfiledir}),
# so the same file serves `cmake --install --prefix ANY` and the Debian
# package (installed under /usr while CMAKE_INSTALL_PREFIX says /usr/local).
set(GENOMED_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH GENOMED_PC_PREFIX_FROM_PCDIR /prefix/${GENOMED_PC_DIR} /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/genomed.pc.in ${PROJECT_BINARY_DIR}/genomed.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/genomed.pc DESTINATION ${GENOMED_PC_DIR})

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs
  FILES_MATCHING PATTERN "*.md")
