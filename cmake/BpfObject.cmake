# bpf_object(NAME SOURCE [DEPENDS headers...])
# Compiles SOURCE with clang for the BPF target, generates NAME.skel.h with
# bpftool, and defines the INTERFACE target NAME_skel to link against.
# The skeleton embeds the ELF: nothing is read from disk at run time.
find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

# libbpf's __TARGET_ARCH_* name of the build machine (bpf_tracing.h and
# CO-RE helpers key on it); the BPF bytecode itself is arch-independent.
string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _pf_cpu)
if(_pf_cpu MATCHES "^(x86_64|amd64|i.86)$")
  set(BPF_TARGET_ARCH x86)
elseif(_pf_cpu MATCHES "^(aarch64|arm64)$")
  set(BPF_TARGET_ARCH arm64)
elseif(_pf_cpu MATCHES "^arm")
  set(BPF_TARGET_ARCH arm)
elseif(_pf_cpu MATCHES "^(ppc64|ppc64le|powerpc64)")
  set(BPF_TARGET_ARCH powerpc)
elseif(_pf_cpu MATCHES "^s390")
  set(BPF_TARGET_ARCH s390)
elseif(_pf_cpu MATCHES "^riscv")
  set(BPF_TARGET_ARCH riscv)
else()
  set(BPF_TARGET_ARCH ${_pf_cpu})
endif()

function(bpf_object name src)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${BPF_TARGET_ARCH} -Wall -Wextra
            $<$<BOOL:${PODFENCE_WERROR}>:-Werror>
            $<$<BOOL:${PODFENCE_DATAPATH_VARIANT}>:-DPF_DATAPATH_VARIANT>
            -I${CMAKE_CURRENT_SOURCE_DIR} -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${src} ${ARG_DEPENDS}
    COMMENT "BPF ${src}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h")
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  set(${name}_OBJECT ${obj} PARENT_SCOPE)
endfunction()
