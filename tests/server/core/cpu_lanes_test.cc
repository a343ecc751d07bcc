#include "server/core/cpu_lanes.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

// Records the thread of every call.
struct Threads {
  absl::Mutex mu;
  std::vector<std::thread::id> load, infer;
};

class ThreadRecordingModel : public SegmentationModel {
 public:
  ThreadRecordingModel(Threads* threads, std::string device)
      : threads_(threads), device_(std::move(device)) {}
  absl::StatusOr<std::vector<InferenceOutput>> Infer(
      absl::Span<const ModelInput> inputs, OutputKinds) override {
    absl::MutexLock lock(&threads_->mu);
    threads_->infer.push_back(std::this_thread::get_id());
    return std::vector<InferenceOutput>(inputs.size());
  }
  std::string device() const override { return device_; }
  int64_t parameter_count() const override { return 7; }

 private:
  Threads* const threads_;
  const std::string device_;
};

ModelLoader RecordingLoader(Threads* threads) {
  return [threads](const v1::ModelConfig& config, const std::string&,
                   const std::string& device)
             -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
    if (config.name() == "throws") throw std::runtime_error("bad weights");
    absl::MutexLock lock(&threads->mu);
    threads->load.push_back(std::this_thread::get_id());
    return std::make_unique<ThreadRecordingModel>(threads, device);
  };
}

TEST(CpuLanesTest, CpuModelsLoadAndRunOnTheOneLane) {
  Threads threads;
  std::atomic<int> inits{0};
  ModelLoader loader =
      RunCpuModelsOnLanes(RecordingLoader(&threads),
                          std::make_shared<CpuLanes>(1, [&inits] { ++inits; }));
  const uint8_t pixel[3] = {};
  const ModelInput input{pixel, {0, 0, 1, 1}};
  const std::vector<ModelInput> batch = {input, input};
  // Two models, each used from its own instance thread.
  std::vector<std::thread> instances;
  for (int i = 0; i < 2; ++i) {
    instances.emplace_back([&] {
      auto model = loader(v1::ModelConfig(), "", "cpu");
      ASSERT_TRUE(model.ok()) << model.status();
      EXPECT_EQ((*model)->device(), "cpu");
      EXPECT_EQ((*model)->parameter_count(), 7);
      auto outputs = (*model)->Infer(batch, {});
      ASSERT_TRUE(outputs.ok());
      EXPECT_EQ(outputs->size(), 2u);
    });
  }
  for (auto& instance : instances) instance.join();
  ASSERT_EQ(threads.load.size(), 2u);
  ASSERT_EQ(threads.infer.size(), 2u);
  const std::thread::id lane = threads.load[0];
  EXPECT_NE(lane, std::this_thread::get_id());
  for (const auto& id : threads.load) EXPECT_EQ(id, lane);
  for (const auto& id : threads.infer) EXPECT_EQ(id, lane);
  EXPECT_EQ(inits.load(), 1) << "the lane sets itself up once";
}

TEST(CpuLanesTest, GpuModelsStayOnTheCallersThread) {
  Threads threads;
  ModelLoader loader = RunCpuModelsOnLanes(
      RecordingLoader(&threads), std::make_shared<CpuLanes>(1, nullptr));
  auto model = loader(v1::ModelConfig(), "", "cuda:0");
  ASSERT_TRUE(model.ok());
  const uint8_t pixel[3] = {};
  const std::vector<ModelInput> batch = {{pixel, {0, 0, 1, 1}}};
  ASSERT_TRUE((*model)->Infer(batch, {}).ok());
  EXPECT_EQ(threads.load.at(0), std::this_thread::get_id());
  EXPECT_EQ(threads.infer.at(0), std::this_thread::get_id());
}

TEST(CpuLanesTest, LoaderExceptionsBecomeErrors) {
  Threads threads;
  ModelLoader loader = RunCpuModelsOnLanes(
      RecordingLoader(&threads), std::make_shared<CpuLanes>(1, nullptr));
  v1::ModelConfig config;
  config.set_name("throws");
  auto model = loader(config, "", "cpu");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(model.status().message().find("bad weights"), std::string::npos);
}

}  // namespace
}  // namespace segserve
