# The Debian package: `cpack -G DEB` in a build directory packages what
# cmake/install.cmake installs (daemon, worker, tools, headers, libraries,
# CMake and pkg-config files, docs) under /usr. scripts/package.sh builds it
# from a release configuration; the test Install.DebianPackage builds one
# from the test build, lists it and installs it into a scratch root.
# Included from CMakeLists.txt after cmake/install.cmake.

# ---- systemd hook -----------------------------------------------------------------
# Unit files (dist/systemd/*.service, *.socket) go to /usr/lib/systemd/system
# when the tree has them; nothing here needs to change when they land.
file(GLOB GENOMED_SYSTEMD_UNITS CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/dist/systemd/*.service ${PROJECT_SOURCE_DIR}/dist/systemd/*.socket)
if(EXISTS ${PROJECT_SOURCE_DIR}/dist/systemd AND GENOMED_SYSTEMD_UNITS)
  install(FILES ${GENOMED_SYSTEMD_UNITS} DESTINATION lib/systemd/system)
endif()
# The user, group and adapter root the unit expects, made by the postinst
# (dist/debian/postinst) through systemd-sysusers and systemd-tmpfiles.
install(FILES dist/sysusers.d/genomed.conf DESTINATION lib/sysusers.d)
install(FILES dist/tmpfiles.d/genomed.conf DESTINATION lib/tmpfiles.d)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/dist/debian/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_PACKAGE_NAME genomed)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "daemon that loads LoRA adapters into shared memory for inference servers")
set(CPACK_PACKAGE_DESCRIPTION
  "genomed loads PEFT LoRA adapters in sandboxed worker processes into a shared-memory\
 cache with a byte budget and serves them to inference servers as zero-copy, read-only\
 views over a Unix socket. The package holds the daemon and its worker, genomectl,\
 genome-fixture, and the client library (C and C++, with CMake and pkg-config files).")
set(CPACK_PACKAGE_CONTACT "genomed maintainers <genomed@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # genomed_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
# Depends: computed from the binaries' shared libraries by dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_GENERATOR DEB)
include(CPack)
