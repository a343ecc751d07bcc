// A caching allocator for LibTorch's CPU tensors.
//
// glibc serves every allocation above its mmap threshold (at most 32 MiB)
// with a fresh mmap and returns it with munmap, so each forward pass of a
// large batch page-faults all its big activations in again: on this project's
// 2-core machine SGCPNet at 768x1536, batch 8, spent as much time in the
// kernel as in user code. Smaller blocks fault too when they are freed to a
// thread's glibc arena (a model instance thread's), which returns its free
// top to the kernel: SGCPNet at 512x512, batch 1, faulted about 20 MB per
// request in the server (BENCHMARKS.md). This allocator keeps freed blocks of
// 64 KiB and more (sizes rounded up to 1/8 of their power of two) and hands
// them out again, up to a cap on the bytes it holds (the least recently freed
// blocks make room for new ones); smaller blocks go to posix_memalign / free as
// before. Blocks are 64-byte aligned like LibTorch's own.
//
// The allocator is process-wide state: install it once at startup, from
// main() (the server, tools, benchmarks), before tensors are made. Tensors
// allocated earlier keep their own deleters, so installing late is safe.
// Thread-safe.

#ifndef SEGSERVE_MODEL_CPU_ALLOCATOR_H_
#define SEGSERVE_MODEL_CPU_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>

namespace segserve {

struct CachingCpuAllocatorStats {
  int64_t cached_bytes = 0;  // Held in the cache now.
  int64_t hits = 0;          // Allocations served from the cache.
  int64_t misses = 0;        // Cacheable allocations that were not.
};

// Makes the caching allocator LibTorch's CPU allocator, holding at most
// `max_cached_bytes` of free blocks (the default covers SGCPNet at 768x1536,
// batch 8, whose forward pass peaks at about 3.3 GB). Later calls only
// change the cap.
void InstallCachingCpuAllocator(int64_t max_cached_bytes = int64_t{4} << 30);

// Zero stats before installation.
CachingCpuAllocatorStats GetCachingCpuAllocatorStats();

}  // namespace segserve

#endif  // SEGSERVE_MODEL_CPU_ALLOCATOR_H_
