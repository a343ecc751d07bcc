#!/usr/bin/env bash
# Makes the GPU build kit: everything segserve's build needs that a machine
# with only PyTorch, a compiler, CMake and ninja lacks (gRPC, protobuf,
# Abseil, OpenCV core/imgproc/imgcodecs, prometheus-cpp, libevent, RapidJSON,
# GoogleTest, pkg-config), as Debian 12 packages unpacked into one prefix.
#   scripts/gpu-kit/make-kit.sh [OUT]     (default build-gpu-kit/kit.tar.xz)
# The kit holds usr/ (the packages of packages.txt, pruned), stubs.c (below)
# and the scripts of this folder; scripts/gpu-kit/README.md says how to use it.
#
# OpenCV's imgcodecs links GDAL, GDCM and OpenEXR, whose own closures are
# some 100 packages and over 150 MiB. segserve calls none of them (no GDAL
# loading, no DICOM or EXR files), so the kit carries stubs:
# stubs.c defines every symbol OpenCV takes from those libraries, generated
# here from the real ones and compiled once per soname (OpenCV is linked
# with BIND_NOW: every symbol must resolve). Libraries that something else
# in the process may use are real: BLAS and LAPACK (a stub's sgemm_ could
# answer LibTorch's calls), OpenGL's GLX (libGL needs more of it).
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(realpath -m "${1:-$root/build-gpu-kit/kit.tar.xz}")
work=$(dirname "$out")/work
lib=/usr/lib/x86_64-linux-gnu
start=$SECONDS

mkdir -p "$work/debs"
rm -rf "$work/kit"
mkdir -p "$work/kit"
mapfile -t packages < <(grep -v '^\s*#' "$here/packages.txt" | tr ' ' '\n' | grep .)
# apt-get download writes into the current folder; a package already there
# (same version) is not fetched again.
(cd "$work/debs" && apt-get download -qq "${packages[@]}" patchelf)
for package in "${packages[@]}"; do
  deb=$(ls "$work/debs/${package}_"*.deb | sort -V | tail -1)
  dpkg-deb -x "$deb" "$work/kit"
done
rm -rf "$work/patchelf"
dpkg-deb -x "$(ls "$work/debs/patchelf_"*.deb | tail -1)" "$work/patchelf"

cd "$work/kit"
# Not usr-merged packages (zlib1g, liblzma5, ...) unpack under lib/.
if [[ -d lib/x86_64-linux-gnu ]]; then
  cp -a lib/x86_64-linux-gnu/. usr/lib/x86_64-linux-gnu/
  rm -rf lib
fi
# Documentation, the OpenCV tools (they need the other 50 modules), the
# other languages' gRPC plugins and every static library but GoogleTest's
# (Debian ships no shared gtest): 84 MiB of .a files.
rm -rf etc usr/share/{doc,man,lintian,locale,bug,doc-base,aclocal} usr/src \
  usr/bin/opencv_* usr/bin/grpc_{csharp,node,objective_c,php,python,ruby}_plugin
find . -name '*.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' -delete
# Libraries the build never links (the CMake files' check for them is
# relaxed by prepare.sh).
rm -f usr/lib/x86_64-linux-gnu/lib{grpc,grpc++}_unsecure.so* \
  usr/lib/x86_64-linux-gnu/libprometheus-cpp-{pull,push}.so
# protoc, grpc_cpp_plugin and pkgconf find their libraries in the kit
# (DT_RPATH also covers the libraries' own dependencies).
"$work/patchelf/usr/bin/patchelf" --force-rpath \
  --set-rpath '$ORIGIN/../lib/x86_64-linux-gnu' \
  usr/bin/protoc usr/bin/grpc_cpp_plugin usr/bin/pkgconf

# CMake's generated Targets files fail when any imported file is missing:
# OpenCV's lists all 55 modules, and the kit has 3. Missing files now fail
# only the targets that link them. prometheus-cpp's config looks for civetweb
# and curl for its pull and push parts, which segserve does not link.
grep -rl 'message(FATAL_ERROR "The imported target' usr/lib/x86_64-linux-gnu/cmake |
  xargs -r sed -i 's/message(FATAL_ERROR "The imported target/message(DEBUG "The imported target/'
sed -i -e 's/^\( *\)find_dependency(civetweb)/\1# &/' \
  -e 's/^\( *\)find_dependency(CURL)/\1# &/' \
  usr/lib/x86_64-linux-gnu/cmake/prometheus-cpp/prometheus-cpp-config.cmake
# zlib1g-dev's libz.so points at /lib/...: make it relative. BLAS and
# LAPACK are reached through links that update-alternatives would make.
ln -sfn libz.so.1 usr/lib/x86_64-linux-gnu/libz.so
ln -sfn blas/libblas.so.3 usr/lib/x86_64-linux-gnu/libblas.so.3
ln -sfn lapack/liblapack.so.3 usr/lib/x86_64-linux-gnu/liblapack.so.3

# stubs.c: what libopencv_imgcodecs takes from the stubbed
# libraries (unversioned, checked below), as functions returning 0 (failure
# for GDAL and OpenEXR, not a crash) and objects of zeros.
stubbed=(libgdal.so.32 libgdcmMSFF.so.3.0 libgdcmDSED.so.3.0
         libOpenEXR-3_1.so.30)
nm -D --undefined-only "$lib/libopencv_imgcodecs.so.406" |
  awk '$1 == "U" {print $2}' | sort -u > "$work/imported.txt"
for so in "${stubbed[@]}"; do
  [[ -e "$lib/$so" ]] || { echo "make-kit: $lib/$so is missing" >&2; exit 1; }
  nm -D --defined-only "$(readlink -f "$lib/$so")" | awk '{print $2, $3}'
done | sed 's/@.*//' | sort -k2,2 -u |
  join -1 2 -2 1 -o 1.1,1.2 - <(sed 's/@.*//' "$work/imported.txt" | sort -u) \
  > "$work/stubbed-symbols.txt"
# A versioned import would not bind to an unversioned stub.
if awk '{print $2}' "$work/stubbed-symbols.txt" |
    grep -qxF -f - <(grep '@' "$work/imported.txt" | sed 's/@.*//'); then
  echo "make-kit: OpenCV imports a stubbed symbol with a version" >&2
  exit 1
fi
{
  echo "/* Generated by scripts/gpu-kit/make-kit.sh: the symbols OpenCV's"
  echo "   imgcodecs takes from ${stubbed[*]}. */"
  i=0
  while read -r type name; do
    case "$type" in
      T | W | i) echo "long f$i(void) __asm__(\"$name\"); long f$i(void) { return 0; }" ;;
      *) echo "char d${i}[64] __asm__(\"$name\");" ;;
    esac
    i=$((i + 1))
  done < "$work/stubbed-symbols.txt"
} > stubs.c
for so in "${stubbed[@]}"; do
  gcc -shared -fPIC -O0 -nostdlib -Wl,-soname,"$so" \
    -o "usr/lib/x86_64-linux-gnu/$so" stubs.c
done
cp "$here/prepare.sh" "$here/env.sh" "$here/packages.txt" .
echo "stubbed: ${stubbed[*]}" > KIT-INFO
echo "symbols: $(wc -l < "$work/stubbed-symbols.txt")" >> KIT-INFO
echo "made: $(date -u +%FT%TZ) from Debian $(cat /etc/debian_version)" >> KIT-INFO

cd "$work/kit"
tar -cf - . | nice -n 19 xz -T1 -9 > "$out.tmp"
mv "$out.tmp" "$out"
echo "make-kit: $out $(du -h "$out" | cut -f1) ($(du -sh . | cut -f1) unpacked," \
  "${#packages[@]} packages, $(wc -l < "$work/stubbed-symbols.txt") stubbed symbols)" \
  "in $((SECONDS - start)) s"
