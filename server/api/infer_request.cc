#include "server/api/infer_request.h"

#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/client_text.h"
#include "common/status_macros.h"
#include "server/service/model_version.h"

namespace segserve {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ParameterMap = google::protobuf::Map<std::string, InferParameter>;

constexpr int64_t kMaxSide = kMaxImageSide;

std::string ImageForms() {
  return absl::StrCat("IMAGE takes BYTES [N] (N encoded ", kEncodedFormats,
                      " images) or UINT8 [H, W, 3] / [N, H, W, 3] (RGB "
                      "pixels)");
}

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status ReadParameters(const ParameterMap& parameters,
                            MaskFormat* mask_format, uint32_t* priority) {
  for (const auto& [name, value] : parameters) {
    if (name == "mask_encoding") {
      const std::string& encoding = value.string_param();
      if (value.parameter_choice_case() != InferParameter::kStringParam ||
          (encoding != "raw" && encoding != "png" && encoding != "rle")) {
        return absl::InvalidArgumentError(
            "parameter mask_encoding must be the string \"raw\" (MASK as a "
            "UINT8 or UINT16 tensor, the default), \"png\" or \"rle\" (MASK "
            "as BYTES, one encoded mask per image)");
      }
      *mask_format = encoding == "png"   ? MaskFormat::kPng
                     : encoding == "rle" ? MaskFormat::kRle
                                         : MaskFormat::kRaw;
    } else if (name == "priority") {
      int64_t level = -1;
      if (value.parameter_choice_case() == InferParameter::kInt64Param) {
        level = value.int64_param();
      } else if (value.parameter_choice_case() ==
                     InferParameter::kUint64Param &&
                 value.uint64_param() <= UINT32_MAX) {
        level = int64_t(value.uint64_param());
      }
      if (level < 0 || level > UINT32_MAX) {
        return absl::InvalidArgumentError(
            "parameter priority must be an integer from 0 (the highest) up");
      }
      *priority = uint32_t(level);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown parameter ", QuoteClientText(name),
          "; allowed: mask_encoding (\"raw\", \"png\", \"rle\"), priority"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadOutputs(const ModelInferRequest& request, InferCall* call) {
  for (const auto& output : request.outputs()) {
    const std::string& name = output.name();
    if (name != kMaskTensor && name != kConfidenceTensor &&
        name != kClassPixelsTensor) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output ", QuoteClientText(name),
                       "; allowed: MASK, CONFIDENCE, CLASS_PIXELS"));
    }
    if (!output.parameters().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output ", name,
                       " takes no parameters; set mask_encoding and "
                       "priority on the request"));
    }
    for (const std::string& seen : call->outputs) {
      if (seen == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("output ", name, " is asked for twice"));
      }
    }
    call->outputs.push_back(name);
  }
  if (call->outputs.empty()) call->outputs.push_back(kMaskTensor);
  return absl::OkStatus();
}

// Splits BYTES elements laid out raw: each a 4-byte little-endian length,
// then that many bytes.
absl::StatusOr<std::vector<absl::string_view>> SplitRawBytes(
    absl::string_view raw, int64_t count) {
  std::vector<absl::string_view> elements;
  while (!raw.empty()) {
    if (raw.size() < 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents of IMAGE ends inside an element's 4-byte "
          "length prefix, after ",
          elements.size(), " element(s)"));
    }
    uint32_t length = 0;
    for (int i = 3; i >= 0; --i) length = (length << 8) | uint8_t(raw[i]);
    raw.remove_prefix(4);
    if (length > raw.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents of IMAGE: element ", elements.size(),
                       " says ", length, " bytes but ", raw.size(), " remain"));
    }
    elements.push_back(raw.substr(0, length));
    raw.remove_prefix(length);
  }
  if (int64_t(elements.size()) != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents of IMAGE holds ", elements.size(),
                     " element(s); its shape says ", count));
  }
  return elements;
}

absl::Status ReadEncodedImages(const ModelInferRequest& request,
                               const ModelInferRequest::InferInputTensor& input,
                               std::vector<absl::string_view>* images,
                               bool* batched) {
  const auto& shape = input.shape();
  const bool flat = shape.size() == 1;
  if (!(flat || (shape.size() == 2 && shape[1] == 1)) || shape[0] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("IMAGE is BYTES ", ShapeText(shape), "; ", ImageForms()));
  }
  const int64_t count = shape[0];
  *batched = !flat || count > 1;
  if (!request.raw_input_contents().empty()) {
    SEGSERVE_ASSIGN_OR_RETURN(
        *images, SplitRawBytes(request.raw_input_contents(0), count));
  } else {
    const auto& contents = input.contents().bytes_contents();
    if (contents.size() != count) {
      return absl::InvalidArgumentError(
          absl::StrCat("IMAGE contents hold ", contents.size(),
                       " bytes_contents element(s); its shape says ", count));
    }
    for (const std::string& image : contents) images->push_back(image);
  }
  for (size_t i = 0; i < images->size(); ++i) {
    if ((*images)[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("IMAGE element ", i, " is empty; send the bytes of a ",
                       kEncodedFormats, " file"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadPixels(const ModelInferRequest& request,
                        const ModelInferRequest::InferInputTensor& input,
                        InferCall* call, int64_t* count, int64_t* height,
                        int64_t* width) {
  const auto& shape = input.shape();
  const bool single = shape.size() == 3;
  if ((!single && shape.size() != 4) || shape[shape.size() - 1] != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("IMAGE is UINT8 ", ShapeText(shape), "; ", ImageForms()));
  }
  *count = single ? 1 : shape[0];
  *height = shape[shape.size() - 3];
  *width = shape[shape.size() - 2];
  if (*count < 1 || *height < 1 || *width < 1 || *height > kMaxSide ||
      *width > kMaxSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("IMAGE is UINT8 ", ShapeText(shape),
                     "; N must be at least 1 and each side 1..", kMaxSide));
  }
  call->batched = !single;
  const uint64_t bytes = uint64_t(*height) * uint64_t(*width) * 3;
  if (!request.raw_input_contents().empty()) {
    const std::string& raw = request.raw_input_contents(0);
    if (raw.size() != bytes * uint64_t(*count)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents of IMAGE holds ", raw.size(), " bytes; UINT8 ",
          ShapeText(shape), " needs ", bytes * uint64_t(*count)));
    }
    return absl::OkStatus();
  }
  const auto& values = input.contents().uint_contents();
  if (uint64_t(values.size()) != bytes * uint64_t(*count)) {
    return absl::InvalidArgumentError(
        absl::StrCat("IMAGE contents hold ", values.size(),
                     " uint_contents element(s); UINT8 ", ShapeText(shape),
                     " needs ", bytes * uint64_t(*count)));
  }
  call->pixels.resize(values.size());
  for (int i = 0; i < values.size(); ++i) {
    if (values[i] > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("IMAGE uint_contents element ", i, " is ", values[i],
                       "; UINT8 elements are 0..255"));
    }
    call->pixels[size_t(i)] = char(values[i]);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ToInferCall(const ModelInferRequest& request, InferCall* call) {
  if (request.inputs_size() != 1 || request.inputs(0).name() != kImageTensor) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model takes one input, IMAGE; the request has ",
        request.inputs_size(), " input(s)",
        request.inputs_size() > 0
            ? absl::StrCat(", the first ",
                           QuoteClientText(request.inputs(0).name()))
            : ""));
  }
  const ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (!request.raw_input_contents().empty()) {
    if (request.raw_input_contents_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents has ", request.raw_input_contents_size(),
          " entries; it needs one per input, and there is one input"));
    }
    if (input.has_contents()) {
      return absl::InvalidArgumentError(
          "IMAGE has both contents and raw_input_contents; send one");
    }
  }
  call->raw_outputs = !input.has_contents();
  if (!input.parameters().empty()) {
    return absl::InvalidArgumentError(
        "input IMAGE takes no parameters; set mask_encoding and priority on "
        "the request");
  }
  MaskFormat mask_format = MaskFormat::kRaw;
  uint32_t priority = 0;
  SEGSERVE_RETURN_IF_ERROR(
      ReadParameters(request.parameters(), &mask_format, &priority));
  SEGSERVE_RETURN_IF_ERROR(ReadOutputs(request, call));

  SegmentJob& job = call->job;
  job.model = request.model_name();
  SEGSERVE_ASSIGN_OR_RETURN(job.version,
                            ParseModelVersion(request.model_version()));
  job.mask_format = mask_format;
  job.priority = priority;
  for (const std::string& name : call->outputs) {
    if (name == kConfidenceTensor) job.with_confidence = true;
  }

  if (input.datatype() == "BYTES") {
    std::vector<absl::string_view> images;
    SEGSERVE_RETURN_IF_ERROR(
        ReadEncodedImages(request, input, &images, &call->batched));
    for (absl::string_view image : images) {
      job.images.emplace_back().encoded = image;
    }
  } else if (input.datatype() == "UINT8") {
    int64_t count = 0, height = 0, width = 0;
    SEGSERVE_RETURN_IF_ERROR(
        ReadPixels(request, input, call, &count, &height, &width));
    const absl::string_view all =
        call->pixels.empty() ? absl::string_view(request.raw_input_contents(0))
                             : absl::string_view(call->pixels);
    const size_t bytes = size_t(height) * size_t(width) * 3;
    for (int64_t i = 0; i < count; ++i) {
      ImageInput& image = job.images.emplace_back();
      image.raw = true;
      image.raw_format = PixelFormat::kRgb8;
      image.raw_width = int(width);
      image.raw_height = int(height);
      image.raw_data = all.substr(size_t(i) * bytes, bytes);
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("IMAGE has datatype ", QuoteClientText(input.datatype()),
                     "; ", ImageForms()));
  }
  return absl::OkStatus();
}

void AppendBytesElement(absl::string_view element, std::string* raw) {
  const uint32_t length = uint32_t(element.size());
  for (int i = 0; i < 4; ++i) raw->push_back(char((length >> (8 * i)) & 0xff));
  raw->append(element.data(), element.size());
}

absl::Status FillInferResponse(const ModelInferRequest& request,
                               const InferCall& call,
                               std::vector<SegmentResult> results,
                               ModelInferResponse* response) {
  if (results.empty()) return absl::InternalError("no image was segmented");
  const int num_classes = results[0].num_classes;
  const int height = results[0].height;
  const int width = results[0].width;
  for (const SegmentResult& result : results) {
    if (result.height != height || result.width != width) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the images of one request must share a size to be answered as "
          "one MASK tensor; got ",
          width, "x", height, " and ", result.width, "x", result.height,
          "; send them in separate requests"));
    }
  }
  response->set_model_name(results[0].model);
  response->set_model_version(absl::StrCat(results[0].version));
  response->set_id(request.id());
  const int64_t images = int64_t(results.size());
  const uint64_t pixels = uint64_t(height) * uint64_t(width);
  auto add_shape = [&](ModelInferResponse::InferOutputTensor* out,
                       std::initializer_list<int64_t> dims) {
    if (call.batched) out->add_shape(images);
    for (int64_t dim : dims) out->add_shape(dim);
  };
  for (const std::string& name : call.outputs) {
    ModelInferResponse::InferOutputTensor* out = response->add_outputs();
    out->set_name(name);
    std::string raw;
    if (name == kMaskTensor && results[0].mask_format != MaskFormat::kRaw) {
      // Encoded masks: one BYTES element per image.
      out->set_datatype("BYTES");
      out->add_shape(images);
      for (const SegmentResult& result : results) {
        if (call.raw_outputs) {
          AppendBytesElement(result.mask, &raw);
        } else {
          out->mutable_contents()->add_bytes_contents(result.mask);
        }
      }
    } else if (name == kMaskTensor) {
      const bool wide = results[0].mask.size() == 2 * pixels;
      out->set_datatype(wide ? "UINT16" : "UINT8");
      add_shape(out, {height, width});
      for (const SegmentResult& result : results) {
        if (call.raw_outputs) {
          raw += result.mask;
          continue;
        }
        auto* values = out->mutable_contents()->mutable_uint_contents();
        const auto* bytes =
            reinterpret_cast<const uint8_t*>(result.mask.data());
        for (uint64_t p = 0; p < pixels; ++p) {
          values->Add(wide ? uint32_t(bytes[2 * p]) |
                                 (uint32_t(bytes[2 * p + 1]) << 8)
                           : uint32_t(bytes[p]));
        }
      }
    } else if (name == kConfidenceTensor) {
      out->set_datatype("UINT8");
      add_shape(out, {height, width});
      for (const SegmentResult& result : results) {
        if (call.raw_outputs) {
          raw += result.confidence;
          continue;
        }
        for (unsigned char value : result.confidence) {
          out->mutable_contents()->add_uint_contents(value);
        }
      }
    } else {  // CLASS_PIXELS
      out->set_datatype("INT64");
      add_shape(out, {num_classes});
      for (const SegmentResult& result : results) {
        std::vector<int64_t> counts(size_t(num_classes), 0);
        for (const ClassCount& stat : result.class_stats) {
          if (stat.class_id >= 0 && stat.class_id < num_classes) {
            counts[size_t(stat.class_id)] = int64_t(stat.pixels);
          }
        }
        for (int64_t count : counts) {
          if (call.raw_outputs) {
            for (int i = 0; i < 8; ++i) {
              raw.push_back(char((uint64_t(count) >> (8 * i)) & 0xff));
            }
          } else {
            out->mutable_contents()->add_int64_contents(count);
          }
        }
      }
    }
    if (call.raw_outputs) response->add_raw_output_contents(std::move(raw));
  }
  return absl::OkStatus();
}

}  // namespace segserve
