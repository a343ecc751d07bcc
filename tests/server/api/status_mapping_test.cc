#include "server/api/status_mapping.h"

#include "gtest/gtest.h"

namespace segserve {
namespace {

TEST(StatusMappingTest, KeepsCodeAndMessage) {
  const struct {
    absl::Status status;
    grpc::StatusCode code;
  } cases[] = {
      {absl::InvalidArgumentError("bad image"),
       grpc::StatusCode::INVALID_ARGUMENT},
      {absl::NotFoundError("no model"), grpc::StatusCode::NOT_FOUND},
      {absl::UnavailableError("draining"), grpc::StatusCode::UNAVAILABLE},
      {absl::ResourceExhaustedError("full"),
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::DeadlineExceededError("late"),
       grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::CancelledError("gone"), grpc::StatusCode::CANCELLED},
      {absl::InternalError("boom"), grpc::StatusCode::INTERNAL},
      {absl::FailedPreconditionError("no gpu"),
       grpc::StatusCode::FAILED_PRECONDITION},
  };
  for (const auto& c : cases) {
    const grpc::Status status = ToGrpcStatus(c.status);
    EXPECT_EQ(status.error_code(), c.code) << c.status;
    EXPECT_EQ(status.error_message(), std::string(c.status.message()));
  }
}

TEST(StatusMappingTest, LongMessagesAreCut) {
  const grpc::Status status =
      ToGrpcStatus(absl::NotFoundError(std::string(20000, 'n')));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LE(status.error_message().size(), 2048u);
}

TEST(StatusMappingTest, OkIsOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusMappingTest, NonCanonicalCodesArriveAsUnknown) {
  // absl folds codes outside 0..16 into UNKNOWN before they reach the map.
  const grpc::Status status =
      ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(99), "odd"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(status.error_message(), "odd");
}

}  // namespace
}  // namespace segserve
