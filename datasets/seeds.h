// Which scene seeds serve which purpose, so that no held-out seed is ever
// trained on.
#ifndef SEGSERVE_DATASETS_SEEDS_H_
#define SEGSERVE_DATASETS_SEEDS_H_

#include <cstdint>

namespace segserve {

// Held-out test scenes: seeds 0..kTestSeedCount-1 (the accuracy gates,
// MODELS.md, make demo).
inline constexpr uint64_t kTestSeedCount = 1000;
// Validation scenes scored by segtrain after training.
inline constexpr uint64_t kValidationSeedBase = 500000;
// Training draws scenes kTrainingSeedBase, kTrainingSeedBase + 1, ...
inline constexpr uint64_t kTrainingSeedBase = 1000000;

}  // namespace segserve

#endif  // SEGSERVE_DATASETS_SEEDS_H_
