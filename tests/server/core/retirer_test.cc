// The retirer tears versions down on its own thread, whoever drops them.
#include "server/core/retirer.h"

#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/server/fake_model.h"

namespace segserve {
namespace {

// Records the thread its destructor runs on.
class TrackedModel : public FakeModel {
 public:
  TrackedModel(std::thread::id* destroyed_on, absl::Notification* destroyed)
      : FakeModel(std::make_shared<FakeModelState>(), 8, 8),
        destroyed_on_(destroyed_on),
        destroyed_(destroyed) {}
  ~TrackedModel() override {
    *destroyed_on_ = std::this_thread::get_id();
    destroyed_->Notify();
  }

 private:
  std::thread::id* const destroyed_on_;
  absl::Notification* const destroyed_;
};

class RetirerTest : public ::testing::Test {
 protected:
  std::unique_ptr<ServedModel> CreateModel() {
    ServedModel::Options options;
    options.config.set_name("m");
    options.config.set_max_batch_size(1);
    options.config.mutable_input()->set_height(8);
    options.config.mutable_input()->set_width(8);
    for (int c = 0; c < 3; ++c) {
      options.config.mutable_input()->add_mean(0);
      options.config.mutable_input()->add_std(1);
    }
    options.version = 1;
    options.devices = {"cpu"};
    options.clock = RealClock::Get();
    options.metrics = &metrics_;
    options.loader = [this](const v1::ModelConfig&, const std::string&,
                            const std::string&)
        -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
      return std::make_unique<TrackedModel>(&destroyed_on_, &destroyed_);
    };
    auto model = ServedModel::Create(std::move(options));
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : nullptr;
  }

  prometheus::Registry registry_;
  Metrics metrics_{&registry_};
  std::thread::id destroyed_on_;
  absl::Notification destroyed_;
};

TEST_F(RetirerTest, LastReferenceIsTornDownOnTheRetirersThread) {
  auto retirer = std::make_shared<Retirer>();
  std::shared_ptr<ServedModel> model = Retirer::Share(retirer, CreateModel());
  ASSERT_NE(model, nullptr);
  std::thread::id dropped_on;
  std::thread dropper([&] {
    dropped_on = std::this_thread::get_id();
    model.reset();
  });
  dropper.join();
  ASSERT_TRUE(destroyed_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_NE(destroyed_on_, dropped_on);
  EXPECT_NE(destroyed_on_, std::this_thread::get_id());
}

TEST_F(RetirerTest, OutlivesTheVersionsItHolds) {
  auto retirer = std::make_shared<Retirer>();
  std::shared_ptr<ServedModel> model = Retirer::Share(retirer, CreateModel());
  retirer.reset();  // The version still holds it.
  EXPECT_FALSE(destroyed_.HasBeenNotified());
  model.reset();  // Hands the version over, then stops the retirer.
  EXPECT_TRUE(destroyed_.HasBeenNotified())
      << "the retirer finishes its teardowns before it goes";
}

}  // namespace
}  // namespace segserve
