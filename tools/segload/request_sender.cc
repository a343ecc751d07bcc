#include "tools/segload/request_sender.h"

#include <cstdint>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "inference/open_inference.grpc.pb.h"

namespace segserve {
namespace {

class SegmentSender final : public RequestSender {
 public:
  explicit SegmentSender(Client* client) : client_(client) {}
  absl::StatusOr<v1::SegmentResponse> Send(
      const std::shared_ptr<const v1::SegmentRequest>& request) override {
    return client_->Segment(*request);
  }
  void SendAsync(std::shared_ptr<const v1::SegmentRequest> request,
                 Done done) override {
    client_->SegmentAsync(std::move(request), std::move(done));
  }

 private:
  Client* const client_;
};

const char* EncodingParameter(v1::MaskEncoding encoding) {
  switch (encoding) {
    case v1::RAW:
      return "raw";
    case v1::RLE:
      return "rle";
    default:
      return "png";
  }
}

// A LoadInput as a ModelInferRequest, with what the answer needs.
struct OipInput {
  inference::ModelInferRequest request;
  int width = 0;
  int height = 0;
  v1::MaskEncoding encoding = v1::PNG;
};

OipInput ToOip(const LoadInput& input) {
  const v1::SegmentRequest& segment = *input.request;
  OipInput out;
  out.width = input.width;
  out.height = input.height;
  out.encoding = segment.mask_encoding();
  inference::ModelInferRequest& request = out.request;
  request.set_model_name(segment.model());
  request.set_model_version(segment.model_version());
  (*request.mutable_parameters())["mask_encoding"].set_string_param(
      EncodingParameter(segment.mask_encoding()));
  auto* image = request.add_inputs();
  image->set_name("IMAGE");
  if (segment.image().has_raw()) {
    const v1::RawImage& raw = segment.image().raw();
    image->set_datatype("UINT8");
    image->add_shape(raw.height());
    image->add_shape(raw.width());
    image->add_shape(3);
    request.add_raw_input_contents(raw.data());
  } else {
    image->set_datatype("BYTES");
    image->add_shape(1);
    request.add_raw_input_contents(PackBytesElement(segment.image().encoded()));
  }
  return out;
}

absl::StatusOr<v1::SegmentResponse> ToSegmentResponse(
    const OipInput& input, const inference::ModelInferResponse& answer) {
  if (answer.outputs_size() < 1 || answer.raw_output_contents_size() < 1 ||
      answer.outputs(0).name() != "MASK") {
    return absl::DataLossError("the ModelInfer answer has no raw MASK");
  }
  v1::SegmentResponse response;
  response.set_model(answer.model_name());
  response.set_model_version(answer.model_version());
  v1::Mask* mask = response.mutable_mask();
  mask->set_width(uint32_t(input.width));
  mask->set_height(uint32_t(input.height));
  const std::string& data = answer.raw_output_contents(0);
  if (answer.outputs(0).datatype() == "BYTES") {
    if (data.size() < 4) return absl::DataLossError("MASK element is cut");
    mask->set_encoding(input.encoding);
    mask->set_data(data.substr(4));
  } else {
    mask->set_encoding(v1::RAW);
    mask->set_data(data);
  }
  return response;
}

class OipSender final : public RequestSender {
 public:
  OipSender(Client* client, const ClientOptions& options,
            const std::vector<LoadInput>& inputs)
      : stub_(inference::GRPCInferenceService::NewStub(client->channel())),
        defaults_{options.default_deadline_ms, options.bearer_token} {
    for (const LoadInput& input : inputs) {
      inputs_.emplace(input.request.get(), ToOip(input));
    }
  }

  absl::StatusOr<v1::SegmentResponse> Send(
      const std::shared_ptr<const v1::SegmentRequest>& request) override {
    const OipInput& input = Find(*request);
    grpc::ClientContext context;
    ApplyCallOptions({}, defaults_, &context);
    inference::ModelInferResponse answer;
    const grpc::Status status =
        stub_->ModelInfer(&context, input.request, &answer);
    if (!status.ok()) return ToAbslStatus(status);
    return ToSegmentResponse(input, answer);
  }

  void SendAsync(std::shared_ptr<const v1::SegmentRequest> request,
                 Done done) override {
    struct Call {
      grpc::ClientContext context;
      inference::ModelInferResponse answer;
      Done done;
    };
    const OipInput& input = Find(*request);
    auto* call = new Call;
    call->done = std::move(done);
    ApplyCallOptions({}, defaults_, &call->context);
    stub_->async()->ModelInfer(
        &call->context, &input.request, &call->answer,
        [call, &input](grpc::Status status) {
          absl::StatusOr<v1::SegmentResponse> result =
              status.ok()
                  ? ToSegmentResponse(input, call->answer)
                  : absl::StatusOr<v1::SegmentResponse>(ToAbslStatus(status));
          Done finish = std::move(call->done);
          delete call;
          std::move(finish)(std::move(result));
        });
  }

 private:
  const OipInput& Find(const v1::SegmentRequest& request) const {
    return inputs_.at(&request);
  }

  const std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  const CallDefaults defaults_;
  absl::flat_hash_map<const v1::SegmentRequest*, OipInput> inputs_;
};

}  // namespace

std::string PackBytesElement(const std::string& element) {
  std::string packed;
  const uint32_t length = uint32_t(element.size());
  for (int i = 0; i < 4; ++i)
    packed.push_back(char((length >> (8 * i)) & 0xff));
  return packed + element;
}

std::unique_ptr<RequestSender> MakeSegmentSender(Client* client) {
  return std::make_unique<SegmentSender>(client);
}

std::unique_ptr<RequestSender> MakeOipSender(
    Client* client, const ClientOptions& options,
    const std::vector<LoadInput>& inputs) {
  return std::make_unique<OipSender>(client, options, inputs);
}

}  // namespace segserve
