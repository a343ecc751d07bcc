#include "model/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace segserve {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kMinCachedBytes = size_t{64} << 10;
// Above LibTorch's default allocator (0), so that it takes over.
constexpr uint8_t kPriority = 1;

void* AlignedAlloc(size_t bytes) {
  void* data = nullptr;
  if (posix_memalign(&data, kAlignment, bytes) != 0) throw std::bad_alloc();
  return data;
}

// Rounds up to a multiple of 1/8 of the size's power of two, so that
// similar sizes share blocks while wasting at most 12.5%.
size_t RoundUp(size_t bytes) {
  size_t power = kMinCachedBytes;
  while (power < bytes) power <<= 1;
  const size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  // The context of every DataPtr is its data pointer, as raw_allocate /
  // raw_deallocate (used inside LibTorch) require; sizes of cacheable
  // blocks are looked up in live_.
  c10::DataPtr allocate(size_t bytes) const override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (bytes == 0) return {nullptr, nullptr, &Delete, cpu};
    if (bytes < kMinCachedBytes) {
      void* data = AlignedAlloc(bytes);
      return {data, data, &Delete, cpu};
    }
    const size_t rounded = RoundUp(bytes);
    void* data = Take(rounded);
    if (data == nullptr) {
      data = AlignedAlloc(rounded);
      std::lock_guard<std::mutex> lock(mutex_);
      live_[data] = rounded;
    }
    return {data, data, &Delete, cpu};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  void set_max_cached_bytes(int64_t bytes) { max_cached_bytes_ = bytes; }

  CachingCpuAllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  static void Delete(void* data);

  // The most recently freed cached block of exactly `bytes`, now live, or
  // null.
  void* Take(size_t bytes) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(bytes);
    if (it == free_.end() || it->second.empty()) {
      ++stats_.misses;
      return nullptr;
    }
    const auto block = order_.find(it->second.back());
    it->second.pop_back();
    void* data = block->second.data;
    order_.erase(block);
    live_[data] = bytes;
    stats_.cached_bytes -= static_cast<int64_t>(bytes);
    ++stats_.hits;
    return data;
  }

  // Caches a freed block, evicting the least recently freed ones to stay
  // under the cap: when the workload changes (another model, another batch
  // size), blocks of the old sizes make room instead of the new ones being
  // returned to the system.
  void Free(void* data) {
    std::vector<void*> evicted;
    bool cached = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(data);
      if (it != live_.end()) {
        const int64_t bytes = static_cast<int64_t>(it->second);
        live_.erase(it);
        const int64_t cap = max_cached_bytes_.load();
        while (stats_.cached_bytes + bytes > cap && !order_.empty()) {
          const auto oldest = order_.begin();
          // The oldest block is the first of its size's list.
          std::vector<uint64_t>& same_size = free_[oldest->second.bytes];
          same_size.erase(same_size.begin());
          stats_.cached_bytes -= static_cast<int64_t>(oldest->second.bytes);
          evicted.push_back(oldest->second.data);
          order_.erase(oldest);
        }
        if (bytes <= cap) {
          const uint64_t sequence = next_sequence_++;
          order_[sequence] = {data, static_cast<size_t>(bytes)};
          free_[static_cast<size_t>(bytes)].push_back(sequence);
          stats_.cached_bytes += bytes;
          cached = true;
        }
      }
    }
    for (void* block : evicted) std::free(block);
    if (!cached) std::free(data);
  }

  struct CachedBlock {
    void* data;
    size_t bytes;
  };

  mutable std::mutex mutex_;
  // Free blocks by the order they were freed in, and their sequence numbers
  // by rounded size (oldest first).
  mutable std::map<uint64_t, CachedBlock> order_;
  mutable std::map<size_t, std::vector<uint64_t>> free_;
  mutable uint64_t next_sequence_ = 0;
  mutable std::unordered_map<void*, size_t> live_;  // Cacheable, in use.
  mutable CachingCpuAllocatorStats stats_;
  std::atomic<int64_t> max_cached_bytes_{0};
};

// Never destroyed: tensors may outlive static destruction.
CachingCpuAllocator* Instance() {
  static auto* allocator = new CachingCpuAllocator();
  return allocator;
}

void CachingCpuAllocator::Delete(void* data) {
  if (data != nullptr) Instance()->Free(data);
}

}  // namespace

void InstallCachingCpuAllocator(int64_t max_cached_bytes) {
  static std::once_flag installed;
  CachingCpuAllocator* allocator = Instance();
  allocator->set_max_cached_bytes(max_cached_bytes);
  std::call_once(installed,
                 [allocator] { c10::SetCPUAllocator(allocator, kPriority); });
}

CachingCpuAllocatorStats GetCachingCpuAllocatorStats() {
  return Instance()->stats();
}

}  // namespace segserve
