#include "server/api/rest_segment.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/client_text.h"
#include "common/status_macros.h"
#include "server/api/json_util.h"
#include "server/service/model_version.h"

namespace segserve {
namespace {

constexpr char kImageTypes[] =
    "image/jpeg, image/png, image/webp, image/bmp or image/tiff (an encoded "
    "file), or application/octet-stream with ?width=W&height=H"
    "[&format=rgb8|bgr8|gray8] (raw pixels)";

// The media type without parameters, lower case ("Image/PNG; q=1" is
// "image/png").
std::string MediaType(absl::string_view header) {
  return absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(header.substr(0, header.find(';'))));
}

bool IsEncodedImageType(absl::string_view type) {
  return type == "image/jpeg" || type == "image/jpg" || type == "image/png" ||
         type == "image/webp" || type == "image/bmp" || type == "image/tiff";
}

absl::StatusOr<bool> ReadBool(absl::string_view name, absl::string_view text) {
  if (text == "true" || text == "1" || text.empty()) return true;
  if (text == "false" || text == "0") return false;
  return absl::InvalidArgumentError(absl::StrCat("query parameter ", name,
                                                 " is ", QuoteClientText(text),
                                                 "; allowed: true or false"));
}

absl::Status ReadRawImage(const HttpRequest& request, ImageInput* image) {
  int width = 0;
  int height = 0;
  const auto w = request.Query("width");
  const auto h = request.Query("height");
  if (!w || !h || !absl::SimpleAtoi(*w, &width) ||
      !absl::SimpleAtoi(*h, &height) || width < 1 || height < 1 ||
      width > kMaxImageSide || height > kMaxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw pixels (application/octet-stream) need ?width=W&height=H, each "
        "1..",
        kMaxImageSide));
  }
  const absl::string_view format = request.Query("format").value_or("rgb8");
  int channels = 3;
  if (format == "rgb8") {
    image->raw_format = PixelFormat::kRgb8;
  } else if (format == "bgr8") {
    image->raw_format = PixelFormat::kBgr8;
  } else if (format == "gray8") {
    image->raw_format = PixelFormat::kGray8;
    channels = 1;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("query parameter format is ", QuoteClientText(format),
                     "; allowed: rgb8, bgr8, gray8"));
  }
  const uint64_t bytes = uint64_t(width) * uint64_t(height) * channels;
  if (request.body.size() != bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body holds ", request.body.size(), " bytes; ", width,
                     "x", height, " ", format, " pixels are ", bytes));
  }
  image->raw = true;
  image->raw_width = width;
  image->raw_height = height;
  image->raw_data = request.body;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RestSegmentCall> ToRestSegmentCall(const HttpRequest& request,
                                                  const std::string& model,
                                                  const std::string& version) {
  RestSegmentCall call;
  SegmentJob& job = call.job;
  job.model = model;
  SEGSERVE_ASSIGN_OR_RETURN(job.version, ParseModelVersion(version));
  const std::string type =
      MediaType(request.Header("Content-Type").value_or(""));
  ImageInput& image = job.images.emplace_back();
  if (type == "application/octet-stream") {
    SEGSERVE_RETURN_IF_ERROR(ReadRawImage(request, &image));
  } else if (IsEncodedImageType(type)) {
    if (request.body.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the body is empty; send the bytes of a ", kEncodedFormats, " file"));
    }
    image.encoded = request.body;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "Content-Type ", QuoteClientText(type),
        " is not an image this endpoint takes; send ", kImageTypes));
  }
  job.mask_format = MaskFormat::kPng;
  for (const auto& [name, value] : request.query) {
    if (name == "width" || name == "height" || name == "format") continue;
    if (name == "mask_encoding") {
      if (value == "png") {
        job.mask_format = MaskFormat::kPng;
      } else if (value == "raw") {
        job.mask_format = MaskFormat::kRaw;
      } else if (value == "rle") {
        job.mask_format = MaskFormat::kRle;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter mask_encoding is ",
                         QuoteClientText(value), "; allowed: png, raw, rle"));
      }
    } else if (name == "confidence") {
      SEGSERVE_ASSIGN_OR_RETURN(job.with_confidence, ReadBool(name, value));
    } else if (name == "priority") {
      uint32_t priority = 0;
      if (!absl::SimpleAtoi(value, &priority)) {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter priority is ", QuoteClientText(value),
                         "; allowed: an integer from 0 (the highest) up"));
      }
      job.priority = priority;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown query parameter ", QuoteClientText(name),
          "; allowed: mask_encoding, confidence, priority, and width, height "
          "and format for raw pixels"));
    }
  }
  const std::string accept = MediaType(request.Header("Accept").value_or(""));
  call.png_body = accept == "image/png";
  if (call.png_body &&
      (job.mask_format != MaskFormat::kPng || job.with_confidence)) {
    return absl::FailedPreconditionError(
        "Accept: image/png answers with the PNG mask alone; drop "
        "mask_encoding and confidence, or accept application/json");
  }
  if (!call.png_body && !accept.empty() && accept != "application/json" &&
      accept != "*/*") {
    return absl::FailedPreconditionError(
        absl::StrCat("Accept ", QuoteClientText(accept),
                     " cannot be answered; allowed: application/json (the "
                     "default) or image/png"));
  }
  return call;
}

HttpResponse ToRestSegmentResponse(const SegmentResult& result, bool png_body) {
  HttpResponse response;
  if (png_body) {
    response.content_type = "image/png";
    response.headers.emplace_back("Segserve-Model", result.model);
    response.headers.emplace_back("Segserve-Model-Version",
                                  absl::StrCat(result.version));
    response.body = result.mask;
    return response;
  }
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("model");
  writer.String(result.model.c_str());
  writer.Key("model_version");
  writer.String(absl::StrCat(result.version).c_str());
  writer.Key("width");
  writer.Int(result.width);
  writer.Key("height");
  writer.Int(result.height);
  writer.Key("mask");
  writer.StartObject();
  writer.Key("encoding");
  writer.String(result.mask_format == MaskFormat::kPng   ? "png"
                : result.mask_format == MaskFormat::kRaw ? "raw"
                                                         : "rle");
  writer.Key("data");
  const std::string mask = absl::Base64Escape(result.mask);
  writer.String(mask.data(), rapidjson::SizeType(mask.size()));
  writer.EndObject();
  if (!result.confidence.empty()) {
    writer.Key("confidence");
    const std::string confidence = absl::Base64Escape(result.confidence);
    writer.String(confidence.data(), rapidjson::SizeType(confidence.size()));
  }
  const double pixels = double(result.width) * double(result.height);
  writer.Key("class_stats");
  writer.StartArray();
  for (const ClassCount& stat : result.class_stats) {
    writer.StartObject();
    writer.Key("class_id");
    writer.Int(stat.class_id);
    writer.Key("name");
    writer.String(stat.name.c_str());
    writer.Key("pixels");
    writer.Uint64(stat.pixels);
    writer.Key("share");
    writer.Double(pixels > 0 ? double(stat.pixels) / pixels : 0.0);
    writer.EndObject();
  }
  writer.EndArray();
  writer.Key("timing");
  writer.StartObject();
  const std::pair<const char*, absl::Duration> times[] = {
      {"queue_us", result.queue_time},
      {"preprocess_us", result.preprocess_time},
      {"inference_us", result.inference_time},
      {"postprocess_us", result.postprocess_time}};
  for (const auto& [name, time] : times) {
    writer.Key(name);
    writer.Int64(absl::ToInt64Microseconds(time));
  }
  writer.Key("batch_size");
  writer.Int(result.batch_size);
  writer.Key("tiles");
  writer.Int(result.tiles);
  writer.EndObject();
  writer.EndObject();
  response.body.assign(buffer.GetString(), buffer.GetSize());
  return response;
}

}  // namespace segserve
