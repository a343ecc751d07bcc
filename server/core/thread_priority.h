#ifndef SEGSERVE_SERVER_CORE_THREAD_PRIORITY_H_
#define SEGSERVE_SERVER_CORE_THREAD_PRIORITY_H_

namespace segserve {

// Sets the calling thread's nice value (Linux schedules threads one by one;
// 0..19, higher yields more). Threads it creates afterwards inherit it.
// Returns whether it took effect.
bool SetThisThreadNice(int nice);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_THREAD_PRIORITY_H_
