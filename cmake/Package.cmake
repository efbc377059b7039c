# The Debian package: `cpack -G DEB` in a build tree writes
# podfence_<version>_<arch>.deb (scripts/package-test.sh builds and checks it).
#
# The package holds what `cmake --install` installs (the binary in
# /opt/cni/bin) plus the documentation a .deb must carry, in component
# "deb". That component is EXCLUDE_FROM_ALL, so `cmake --install` still
# installs the binary only; CPack installs both components.

set(_pf_pkg ${PROJECT_SOURCE_DIR}/packaging)
set(_pf_doc /usr/share/doc/podfence)

# The changelog's latest entry must be this version (lintian checks it).
file(STRINGS ${_pf_pkg}/changelog _pf_changelog_head LIMIT_COUNT 1)
if(NOT _pf_changelog_head MATCHES "^podfence \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "packaging/changelog: the first entry must be "
    "'podfence (${PROJECT_VERSION}) ...', found '${_pf_changelog_head}'")
endif()
# gzip -9n: maximum compression and no name or timestamp, as Debian wants.
# At configure time, re-run when the changelog changes.
find_program(PODFENCE_GZIP gzip REQUIRED)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_pf_pkg}/changelog)
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/packaging)
execute_process(COMMAND ${PODFENCE_GZIP} -9n -c ${_pf_pkg}/changelog
  OUTPUT_FILE ${PROJECT_BINARY_DIR}/packaging/changelog.gz COMMAND_ERROR_IS_FATAL ANY)

install(FILES README.md ${_pf_pkg}/copyright ${PROJECT_BINARY_DIR}/packaging/changelog.gz
  DESTINATION ${_pf_doc} COMPONENT deb EXCLUDE_FROM_ALL)
install(DIRECTORY conf/ DESTINATION ${_pf_doc}/examples COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${_pf_pkg}/lintian-overrides RENAME podfence
  DESTINATION /usr/share/lintian/overrides COMPONENT deb EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME podfence)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "podfence maintainers <maintainers@users.noreply.r-seed-b77cfe9d.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-pod network policy for Kubernetes as a chained CNI plugin (eBPF)")
set(CPACK_PACKAGE_DESCRIPTION [=[
podfence enforces Kubernetes NetworkPolicy semantics with ipBlock peers
(ingress and egress, CIDR with except, TCP/UDP/SCTP ports and port ranges,
IPv4 and IPv6, stateful) on each pod's veth with eBPF programs at TC (tcx,
or clsact on older kernels) or XDP. It runs as the last plugin of a CNI
conflist; containerd and CRI-O pass it the pod's podfence.io/policy
annotation. State is pinned in bpffs; the same binary is the operator's
tool to inspect attachments, read counters, replace a live pod's policy and
watch drop events.

The plugin is installed in /opt/cni/bin, where CNI runtimes look for
plugins; example conflists are in /usr/share/doc/podfence/examples.]=])

# Every file comes from the install rules: the binary (default component)
# and the documentation (component deb), in one package.
set(CPACK_INSTALL_CMAKE_PROJECTS
  "${PROJECT_BINARY_DIR};podfence;Unspecified;/"
  "${PROJECT_BINARY_DIR};podfence;deb;/")
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # podfence_<version>_<arch>.deb, arch from dpkg
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends from dpkg-shlibdeps on the binary: libc6 and libmnl0, versioned.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

include(CPack)
