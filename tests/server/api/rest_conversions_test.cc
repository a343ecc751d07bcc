// The frontends' conversions, without a server: KServe v2 REST JSON and
// binary tensors to the OIP request and back, the image endpoint's
// request, the gRPC OIP and segserve.v1 requests, the playground's files,
// and the status code mappings.
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/infer_request.h"
#include "server/api/json_util.h"
#include "server/api/playground.h"
#include "server/api/rest_infer.h"
#include "server/api/rest_segment.h"
#include "server/api/segment_request.h"
#include "server/api/status_mapping.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;

absl::Status Parse(const std::string& body, inference::ModelInferRequest* out,
                   RestOutputs* outputs = nullptr,
                   std::optional<size_t> json_length = std::nullopt) {
  RestOutputs ignored;
  return ParseRestInferRequest(body, json_length, out,
                               outputs ? outputs : &ignored);
}

TEST(RestInferTest, JsonPixelsBecomeOneRawInput) {
  inference::ModelInferRequest request;
  RestOutputs outputs;
  ASSERT_TRUE(Parse(R"({"id": "r1", "parameters": {"priority": 2,
      "binary_data_output": false},
      "inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 3],
                  "data": [[[1, 2, 3], [4, 5, 255]]]}],
      "outputs": [{"name": "MASK"},
                  {"name": "CLASS_PIXELS", "parameters": {"binary_data": true}}]})",
                    &request, &outputs)
                  .ok());
  EXPECT_EQ(request.id(), "r1");
  ASSERT_EQ(request.raw_input_contents_size(), 1);
  EXPECT_EQ(request.raw_input_contents(0),
            std::string("\x01\x02\x03\x04\x05\xff", 6));
  EXPECT_EQ(request.parameters().at("priority").int64_param(), 2);
  EXPECT_EQ(request.parameters().count("binary_data_output"), 0u);
  EXPECT_FALSE(outputs.IsBinary("MASK"));
  EXPECT_TRUE(outputs.IsBinary("CLASS_PIXELS"));
  // The gRPC frontend's checks take it as it is.
  InferCall call;
  ASSERT_TRUE(ToInferCall(request, &call).ok());
  ASSERT_EQ(call.job.images.size(), 1u);
  EXPECT_EQ(call.job.images[0].raw_width, 2);
  EXPECT_EQ(call.job.priority, 2u);
}

TEST(RestInferTest, BinaryTensorsFollowTheJson) {
  const std::string json =
      R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [2],
          "parameters": {"binary_data_size": 14}}]})";
  const std::string binary =
      std::string("\x03\0\0\0abc", 7) + std::string("\x03\0\0\0xyz", 7);
  inference::ModelInferRequest request;
  ASSERT_TRUE(Parse(json + binary, &request, nullptr, json.size()).ok());
  InferCall call;
  ASSERT_TRUE(ToInferCall(request, &call).ok());
  ASSERT_EQ(call.job.images.size(), 2u);
  EXPECT_EQ(call.job.images[1].encoded, "xyz");
}

TEST(RestInferTest, SizesThatLieAreRefused) {
  const std::string json =
      R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
          "parameters": {"binary_data_size": 100}}]})";
  inference::ModelInferRequest request;
  absl::Status s = Parse(json + "short", &request, nullptr, json.size());
  EXPECT_THAT(s.message(), HasSubstr("binary_data_size 100 but 5 bytes"));
  inference::ModelInferRequest second;
  s = Parse(json, &second, nullptr, json.size() + 1);
  EXPECT_THAT(s.message(), HasSubstr("body holds"));
  const std::string exact =
      R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
          "parameters": {"binary_data_size": 2}}]})";
  inference::ModelInferRequest third;
  s = Parse(exact + "abcd", &third, nullptr, exact.size());
  EXPECT_THAT(s.message(), HasSubstr("2 bytes of binary data follow"));
}

TEST(RestInferTest, MalformedJsonSaysWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"[]", "the infer request is an array"},
      {R"({"inputs": {}})", "inputs is an object"},
      {R"({"inputs": []})", "has no inputs"},
      {R"({"nope": 1, "inputs": []})", "unknown key 'nope'"},
      {R"({"inputs": [{"name": 3}]})", "input name is a number"},
      {R"({"inputs": [{"name": "IMAGE", "shape": [-1]}]})", "dimension"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1],
           "data": [300]}]})",
       "outside 0..255"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
           "data": [1]}]})",
       "BYTES elements are strings"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1]}]})",
       "has neither"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1],
           "data": [1], "parameters": {"binary_data_size": 1}}]})",
       "has both"},
      {R"({"inputs": [{"name": "I", "extra": 1}]})", "unknown input key"},
      {R"({"inputs": [{"name": "I", "data": 5, "datatype": "UINT8"}]})",
       "send an array"},
      {R"({"parameters": [], "inputs": []})", "send an object"},
      {R"({"parameters": {"p": [1]}, "inputs": []})",
       "a boolean, a number or a string"},
      {R"({"parameters": {"binary_data_output": 1}, "inputs": []})",
       "binary_data_output must be true or false"},
      {R"({"outputs": [{"name": "MASK", "parameters": {"binary_data": "y"}}],
           "inputs": []})",
       "binary_data must be true or false"},
      {"{\"id\": \"\xff\"}", "not valid JSON"},
  };
  for (const auto& [body, words] : cases) {
    inference::ModelInferRequest request;
    absl::Status s = Parse(body, &request);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(s.message(), HasSubstr(words)) << body;
  }
}

TEST(RestInferTest, DeepNestingIsRefusedWhileParsing) {
  inference::ModelInferRequest request;
  const std::string deep =
      R"({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1],
          "data": )" +
      std::string(100000, '[') + std::string(100000, ']') + "}]}";
  absl::Status s = Parse(deep, &request);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("nests deeper than 32"));
}

TEST(RestInferTest, AnswersInJsonAndBinary) {
  inference::ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("1");
  response.set_id("r");
  auto* mask = response.add_outputs();
  mask->set_name("MASK");
  mask->set_datatype("UINT8");
  mask->add_shape(1);
  mask->add_shape(2);
  response.add_raw_output_contents(std::string("\x02\x05", 2));
  auto* pixels = response.add_outputs();
  pixels->set_name("CLASS_PIXELS");
  pixels->set_datatype("INT64");
  pixels->add_shape(2);
  response.add_raw_output_contents(
      std::string("\x07\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0", 16));
  auto* png = response.add_outputs();
  png->set_name("PNGS");
  png->set_datatype("BYTES");
  png->add_shape(1);
  response.add_raw_output_contents(std::string("\x02\0\0\0\xff\x00", 6));

  RestOutputs json_only;
  auto body = WriteRestInferResponse(response, json_only);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_FALSE(body->json_length.has_value());
  EXPECT_THAT(body->body, HasSubstr(R"("name":"MASK","datatype":"UINT8",)"
                                    R"("shape":[1,2],"data":[2,5])"));
  EXPECT_THAT(body->body, HasSubstr(R"("data":[7,1])"));
  EXPECT_THAT(body->body,
              HasSubstr(absl::StrCat(
                  R"("content_encoding":"base64"},"data":[")",
                  absl::Base64Escape(std::string("\xff\0", 2)), "\"]")));

  RestOutputs binary;
  binary.binary.insert("CLASS_PIXELS");
  body = WriteRestInferResponse(response, binary);
  ASSERT_TRUE(body.ok());
  ASSERT_TRUE(body->json_length.has_value());
  EXPECT_EQ(body->body.substr(*body->json_length),
            response.raw_output_contents(1));
  EXPECT_THAT(body->body.substr(0, *body->json_length),
              HasSubstr(R"("parameters":{"binary_data_size":16})"));
}

HttpRequest ImageRequest(const std::string& type, const std::string& body) {
  HttpRequest request;
  request.method = "POST";
  request.headers.emplace_back("content-type", type);
  request.body = body;
  return request;
}

TEST(RestSegmentTest, TakesEncodedImagesAndRawPixels) {
  HttpRequest png = ImageRequest("Image/PNG; charset=x", "bytes");
  png.query = {
      {"mask_encoding", "rle"}, {"confidence", "true"}, {"priority", "3"}};
  auto call = ToRestSegmentCall(png, "m", "2");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->job.model, "m");
  EXPECT_EQ(call->job.version, 2);
  EXPECT_EQ(call->job.images[0].encoded, "bytes");
  EXPECT_EQ(call->job.mask_format, MaskFormat::kRle);
  EXPECT_TRUE(call->job.with_confidence);
  EXPECT_EQ(call->job.priority, 3u);
  EXPECT_FALSE(call->png_body);

  HttpRequest raw = ImageRequest("application/octet-stream", "abcdef");
  raw.query = {{"width", "2"}, {"height", "1"}};
  call = ToRestSegmentCall(raw, "m", "");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_TRUE(call->job.images[0].raw);
  EXPECT_EQ(call->job.images[0].raw_width, 2);
}

TEST(RestSegmentTest, RefusesWhatItCannotTakeOrAnswer) {
  const std::vector<std::pair<HttpRequest, std::string>> cases = {
      {ImageRequest("text/plain", "x"), "not an image this endpoint takes"},
      {ImageRequest("image/png", ""), "the body is empty"},
      {ImageRequest("application/octet-stream", "abc"), "need ?width=W"},
      [] {
        HttpRequest r = ImageRequest("application/octet-stream", "abc");
        r.query = {{"width", "2"}, {"height", "1"}};
        return std::make_pair(r, std::string("pixels are 6"));
      }(),
      [] {
        HttpRequest r = ImageRequest("application/octet-stream", "ab");
        r.query = {{"width", "2"}, {"height", "1"}, {"format", "cmyk"}};
        return std::make_pair(r, std::string("allowed: rgb8, bgr8, gray8"));
      }(),
      [] {
        HttpRequest r = ImageRequest("image/png", "x");
        r.query = {{"mask_encoding", "gif"}};
        return std::make_pair(r, std::string("allowed: png, raw, rle"));
      }(),
      [] {
        HttpRequest r = ImageRequest("image/png", "x");
        r.query = {{"priority", "-1"}};
        return std::make_pair(r, std::string("from 0 (the highest) up"));
      }(),
      [] {
        HttpRequest r = ImageRequest("image/png", "x");
        r.query = {{"confidence", "maybe"}};
        return std::make_pair(r, std::string("allowed: true or false"));
      }(),
      [] {
        HttpRequest r = ImageRequest("image/png", "x");
        r.query = {{"colour", "red"}};
        return std::make_pair(r, std::string("unknown query parameter"));
      }(),
      [] {
        HttpRequest r = ImageRequest("image/png", "x");
        r.query = {{"confidence", "true"}};
        r.headers.emplace_back("Accept", "image/png");
        return std::make_pair(r, std::string("PNG mask alone"));
      }(),
      [] {
        HttpRequest r = ImageRequest("image/png", "x");
        r.headers.emplace_back("Accept", "text/html");
        return std::make_pair(r, std::string("cannot be answered"));
      }(),
  };
  for (const auto& [request, words] : cases) {
    auto call = ToRestSegmentCall(request, "m", "");
    EXPECT_FALSE(call.ok()) << words;
    EXPECT_THAT(call.status().message(), HasSubstr(words));
  }
}

TEST(RestSegmentTest, AnswersJsonOrThePng) {
  SegmentResult result;
  result.model = "m";
  result.version = 3;
  result.width = 2;
  result.height = 2;
  result.mask = "PNGDATA";
  result.class_stats = {{0, "background", 3}, {2, "disk", 1}};
  result.queue_time = absl::Microseconds(7);
  HttpResponse json = ToRestSegmentResponse(result, false);
  EXPECT_EQ(json.content_type, "application/json");
  EXPECT_THAT(json.body,
              HasSubstr(absl::StrCat(R"("mask":{"encoding":"png","data":")",
                                     absl::Base64Escape("PNGDATA"), "\"}")));
  EXPECT_THAT(json.body, HasSubstr(R"("name":"disk","pixels":1,"share":0.25)"));
  EXPECT_THAT(json.body, HasSubstr(R"("queue_us":7)"));
  HttpResponse png = ToRestSegmentResponse(result, true);
  EXPECT_EQ(png.content_type, "image/png");
  EXPECT_EQ(png.body, "PNGDATA");
}

TEST(SegmentRequestTest, ConvertsOneImage) {
  v1::SegmentRequest request;
  request.set_model("m");
  request.mutable_image()->mutable_raw()->set_width(2);
  request.mutable_image()->mutable_raw()->set_height(1);
  request.mutable_image()->mutable_raw()->set_format(v1::GRAY8);
  request.mutable_image()->mutable_raw()->set_data("ab");
  request.set_mask_encoding(v1::RLE);
  auto job = ToSegmentJob(request);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->images.size(), 1u);
  EXPECT_EQ(job->images[0].raw_format, PixelFormat::kGray8);
  EXPECT_EQ(job->mask_format, MaskFormat::kRle);
  request.mutable_image()->mutable_raw()->set_width(1 << 17);
  EXPECT_THAT(ToSegmentJob(request).status().message(),
              HasSubstr("each side must be 1..65536"));
  request.clear_image();
  EXPECT_THAT(ToSegmentJob(request).status().message(),
              HasSubstr("the request has no image"));
}

TEST(InferRequestTest, ConvertsABatchOfEncodedImagesAndTheVersion) {
  inference::ModelInferRequest request;
  request.set_model_name("m");
  request.set_model_version("3");
  auto* input = request.add_inputs();
  input->set_name(kImageTensor);
  input->set_datatype("BYTES");
  input->add_shape(2);
  std::string raw;
  AppendBytesElement("first", &raw);
  AppendBytesElement("second", &raw);
  request.add_raw_input_contents(raw);
  InferCall call;
  ASSERT_TRUE(ToInferCall(request, &call).ok());
  EXPECT_TRUE(call.batched);
  EXPECT_TRUE(call.raw_outputs);
  EXPECT_EQ(call.job.model, "m");
  EXPECT_EQ(call.job.version, 3);
  ASSERT_EQ(call.job.images.size(), 2u);
  EXPECT_EQ(call.job.images[1].encoded, "second");

  request.set_model_version("three");
  InferCall refused;
  EXPECT_THAT(ToInferCall(request, &refused).message(),
              HasSubstr("'three' is not a version number"));
}

TEST(InferRequestTest, UintPixelsAreCheckedAgainstTheirShape) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name(kImageTensor);
  input->set_datatype("UINT8");
  for (int64_t side : {1, 2, 3}) input->add_shape(side);
  for (int i = 0; i < 6; ++i) input->mutable_contents()->add_uint_contents(7);
  InferCall call;
  ASSERT_TRUE(ToInferCall(request, &call).ok());
  EXPECT_FALSE(call.batched);
  EXPECT_FALSE(call.raw_outputs) << "contents in, contents out";
  ASSERT_EQ(call.job.images.size(), 1u);
  EXPECT_EQ(call.job.images[0].raw_width, 2);
  EXPECT_EQ(call.job.images[0].raw_data, std::string(6, char(7)));

  input->mutable_contents()->set_uint_contents(5, 256);
  InferCall too_big;
  EXPECT_THAT(ToInferCall(request, &too_big).message(),
              HasSubstr("element 5 is 256; UINT8 elements are 0..255"));
  input->mutable_contents()->add_uint_contents(1);
  InferCall lying;
  EXPECT_THAT(ToInferCall(request, &lying).message(),
              HasSubstr("hold 7 uint_contents element(s)"));
}

TEST(PlaygroundTest, ServesItsOwnFilesOnly) {
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  std::optional<HttpResponse> page = PlaygroundResponse(request);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->code, 200);
  EXPECT_EQ(page->content_type, "text/html; charset=utf-8");
  EXPECT_THAT(page->body, HasSubstr("/playground/app.js"));
  request.path = "/playground/app.js";
  page = PlaygroundResponse(request);
  ASSERT_TRUE(page.has_value());
  EXPECT_THAT(page->body, HasSubstr("/v2/repository/index"));
  request.path = "/playground/../v2";
  EXPECT_EQ(PlaygroundResponse(request)->code, 404);
  request.method = "POST";
  EXPECT_EQ(PlaygroundResponse(request)->code, 405);
  request.path = "/v2/health/live";
  EXPECT_FALSE(PlaygroundResponse(request).has_value());
}

TEST(StatusMappingTest, HttpCodesAreTritons) {
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kOk), 200);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(ToHttpCode(absl::StatusCode::kInternal), 500);
}

TEST(JsonUtilTest, WritesProtosWithNumbers) {
  inference::ModelMetadataResponse metadata;
  metadata.set_name("m");
  auto* input = metadata.add_inputs();
  input->set_name("IMAGE");
  input->add_shape(-1);
  (*metadata.mutable_properties())["k"] = "v";
  EXPECT_EQ(ProtoToJson(metadata),
            R"({"name":"m","inputs":[{"name":"IMAGE","shape":[-1]}],)"
            R"("properties":{"k":"v"}})");
  EXPECT_EQ(ErrorJson("a \"b\""), R"({"error":"a \"b\""})");
}

}  // namespace
}  // namespace segserve
