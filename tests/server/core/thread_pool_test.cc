#include "server/core/thread_pool.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/core/thread_priority.h"

namespace segserve {
namespace {

int ThisThreadNice() {
  return getpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)));
}

TEST(ThreadPoolTest, EveryThreadStartsOnceBeforeItsTasks) {
  absl::Mutex mu;
  std::set<std::thread::id> started;
  int starts = 0;
  std::atomic<int> tasks_before_start{0};
  {
    ThreadPool pool(3, [&] {
      absl::MutexLock lock(&mu);
      started.insert(std::this_thread::get_id());
      ++starts;
    });
    absl::BlockingCounter done(30);
    for (int i = 0; i < 30; ++i) {
      pool.Schedule([&] {
        {
          absl::MutexLock lock(&mu);
          if (!started.count(std::this_thread::get_id())) ++tasks_before_start;
        }
        done.DecrementCount();
      });
    }
    done.Wait();
  }
  EXPECT_EQ(starts, 3);
  EXPECT_EQ(started.size(), 3u);
  EXPECT_EQ(tasks_before_start.load(), 0);
}

// The lanes and their intra-op pools rely on this: a thread made by a
// lowered thread starts lowered too.
TEST(ThreadPriorityTest, NiceIsPerThreadAndInherited) {
  const int own = ThisThreadNice();
  int lowered = -1;
  int child = -1;
  std::thread([&] {
    ASSERT_TRUE(SetThisThreadNice(own + 3));
    lowered = ThisThreadNice();
    std::thread([&] { child = ThisThreadNice(); }).join();
  }).join();
  EXPECT_EQ(lowered, own + 3);
  EXPECT_EQ(child, own + 3);
  EXPECT_EQ(ThisThreadNice(), own) << "the other threads kept their nice";
}

}  // namespace
}  // namespace segserve
