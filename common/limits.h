#ifndef SEGSERVE_COMMON_LIMITS_H_
#define SEGSERVE_COMMON_LIMITS_H_

#include <cstdint>

namespace segserve {

// Class ids travel as 8-bit labels up to 256 classes and 16-bit above, so a
// model may have at most 65536 classes.
inline constexpr int64_t kMaxClasses = 65536;

}  // namespace segserve

#endif  // SEGSERVE_COMMON_LIMITS_H_
