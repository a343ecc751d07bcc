#include "server/core/cpu_lanes.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace segserve {
namespace {

// A CPU model whose every call runs on a lane.
class OnLanesModel : public SegmentationModel {
 public:
  OnLanesModel(std::unique_ptr<SegmentationModel> model,
               std::shared_ptr<CpuLanes> lanes)
      : model_(std::move(model)), lanes_(std::move(lanes)) {}

  absl::StatusOr<std::vector<InferenceOutput>> Infer(
      absl::Span<const ModelInput> inputs, OutputKinds kinds) override {
    absl::StatusOr<std::vector<InferenceOutput>> outputs;
    lanes_->Run([&] {
      try {
        outputs = model_->Infer(inputs, kinds);
      } catch (const std::exception& e) {
        outputs = absl::InternalError(
            absl::StrCat("the model failed on the CPU: ", e.what()));
      }
    });
    return outputs;
  }

  std::string device() const override { return model_->device(); }
  int64_t parameter_count() const override { return model_->parameter_count(); }

 private:
  const std::unique_ptr<SegmentationModel> model_;
  const std::shared_ptr<CpuLanes> lanes_;
};

}  // namespace

CpuLanes::CpuLanes(int lanes, std::function<void()> init)
    : pool_(lanes, std::move(init)) {}

void CpuLanes::Run(absl::FunctionRef<void()> work) {
  absl::Notification done;
  pool_.Schedule([work, &done] {
    work();
    done.Notify();
  });
  done.WaitForNotification();
}

ModelLoader RunCpuModelsOnLanes(ModelLoader loader,
                                std::shared_ptr<CpuLanes> lanes) {
  return [loader = std::move(loader), lanes = std::move(lanes)](
             const v1::ModelConfig& config, const std::string& weights_path,
             const std::string& device)
             -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
    if (device != "cpu") return loader(config, weights_path, device);
    absl::StatusOr<std::unique_ptr<SegmentationModel>> model;
    lanes->Run([&] {
      try {
        model = loader(config, weights_path, device);
      } catch (const std::exception& e) {
        model = absl::InternalError(
            absl::StrCat("loading the model failed: ", e.what()));
      }
    });
    if (!model.ok()) return model.status();
    return std::make_unique<OnLanesModel>(*std::move(model), lanes);
  };
}

}  // namespace segserve
