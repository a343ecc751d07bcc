# shellcheck shell=bash
# Sourced before configuring segserve against the kit and an installed
# PyTorch:   source KIT/env.sh [TORCH_CMAKE_PREFIX]
# The second argument defaults to python3's torch.utils.cmake_prefix_path.
# Sets what CMake, pkg-config, the compiler and the linker need; nested
# CMake runs (the client's find_package test) read the same variables.
segserve_kit=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
segserve_torch_cmake=${1:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
export SEGSERVE_KIT=$segserve_kit
export SEGSERVE_KIT_LIB=$segserve_kit/usr/lib/x86_64-linux-gnu
export CMAKE_PREFIX_PATH="$segserve_kit/usr:$segserve_torch_cmake"
export PKG_CONFIG="$segserve_kit/usr/bin/pkgconf"
export PKG_CONFIG_LIBDIR="$SEGSERVE_KIT_LIB/pkgconfig:$segserve_kit/usr/share/pkgconfig"
# OpenSSL's configuration.h is in the multiarch folder, which the compiler
# searches by itself only under /usr.
export CXXFLAGS="${CXXFLAGS:-} -isystem $segserve_kit/usr/include/x86_64-linux-gnu"
# DT_RPATH, not RUNPATH: it also finds the kit libraries' own dependencies,
# so binaries run without LD_LIBRARY_PATH (which would put the kit's libssl
# or libz before the host's for every other program).
export LDFLAGS="${LDFLAGS:-} -Wl,--disable-new-dtags -Wl,-rpath-link,$SEGSERVE_KIT_LIB -Wl,-rpath,$SEGSERVE_KIT_LIB"
unset segserve_kit segserve_torch_cmake
