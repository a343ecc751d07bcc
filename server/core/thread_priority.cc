#include "server/core/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace segserve {

bool SetThisThreadNice(int nice) {
  return setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), nice) == 0;
}

}  // namespace segserve
