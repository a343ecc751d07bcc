#include "common/mask_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "zlib.h"

namespace segserve {
namespace {

constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";
constexpr size_t kPngSignatureSize = 8;
// A protobuf varint carries 7 bits per byte: 64 bits need at most 10 bytes.
constexpr int kMaxVarintBytes = 10;

absl::Status CheckLabels(const cv::Mat& labels) {
  if (labels.empty()) {
    return absl::InvalidArgumentError(
        "cannot encode an empty label map: it needs at least 1x1 pixels");
  }
  if (labels.type() != CV_8UC1 && labels.type() != CV_16UC1) {
    return absl::InvalidArgumentError(
        absl::StrCat("label map has type ", cv::typeToString(labels.type()),
                     "; only CV_8UC1 and CV_16UC1 are allowed"));
  }
  return absl::OkStatus();
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Reads one varint at *pos, advancing it. `what` names the field for errors.
absl::Status ReadVarint(absl::string_view data, size_t* pos, const char* what,
                        uint64_t* value) {
  uint64_t result = 0;
  const size_t start = *pos;
  for (int i = 0; i < kMaxVarintBytes; ++i) {
    if (*pos >= data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RLE mask truncated: the ", what, " varint at byte ", start,
          " is cut off at the end of the data (", data.size(), " bytes)"));
    }
    const uint8_t byte = static_cast<uint8_t>(data[(*pos)++]);
    // The 10th byte may only contribute the single remaining bit.
    if (i == kMaxVarintBytes - 1 && byte > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("RLE mask has a ", what, " varint at byte ", start,
                       " that overflows 64 bits"));
    }
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = result;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("RLE mask has a ", what, " varint at byte ", start,
                   " longer than ", kMaxVarintBytes, " bytes"));
}

void AppendBigEndian32(uint32_t value, std::string* out) {
  const char bytes[4] = {char(value >> 24), char(value >> 16), char(value >> 8),
                         char(value)};
  out->append(bytes, 4);
}

// One PNG chunk: length, type, data, CRC-32 of type and data.
void AppendChunk(const char type[4], const std::string& data,
                 std::string* out) {
  AppendBigEndian32(uint32_t(data.size()), out);
  const size_t start = out->size();
  out->append(type, 4);
  out->append(data);
  const uLong crc =
      crc32(0, reinterpret_cast<const Bytef*>(out->data() + start),
            uInt(out->size() - start));
  AppendBigEndian32(uint32_t(crc), out);
}

// A grayscale PNG (8- or 16-bit, big-endian samples) written directly with
// zlib. OpenCV's encoder lets libpng try all five row filters on every row,
// which costs more than the compression itself. A label map is long runs of
// equal ids: unfiltered rows under Z_RLE at level 1 pack them as tightly as
// any filter did in our checks, at a third of OpenCV's time (BENCHMARKS.md).
absl::StatusOr<std::string> EncodePng(const cv::Mat& labels) {
  const bool sixteen = labels.depth() == CV_16U;
  const size_t row_bytes = size_t(labels.cols) * (sixteen ? 2 : 1);
  std::string rows((row_bytes + 1) * labels.rows, '\0');
  for (int y = 0; y < labels.rows; ++y) {
    // Each row starts with its filter type, 0 (None).
    char* out = &rows[(row_bytes + 1) * y + 1];
    if (sixteen) {
      const uint16_t* src = labels.ptr<uint16_t>(y);
      for (int x = 0; x < labels.cols; ++x) {
        out[2 * x] = char(src[x] >> 8);
        out[2 * x + 1] = char(src[x] & 0xff);
      }
    } else {
      std::memcpy(out, labels.ptr<uint8_t>(y), row_bytes);
    }
  }

  z_stream stream{};
  if (deflateInit2(&stream, 1, Z_DEFLATED, 15, 8, Z_RLE) != Z_OK) {
    return absl::InternalError("zlib could not start compressing the mask");
  }
  std::string compressed(deflateBound(&stream, uLong(rows.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(rows.data());
  stream.avail_in = uInt(rows.size());
  stream.next_out = reinterpret_cast<Bytef*>(compressed.data());
  stream.avail_out = uInt(compressed.size());
  const int result = deflate(&stream, Z_FINISH);
  compressed.resize(stream.total_out);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) {
    return absl::InternalError(
        absl::StrCat("zlib failed to compress the mask (code ", result, ")"));
  }

  std::string header;
  AppendBigEndian32(uint32_t(labels.cols), &header);
  AppendBigEndian32(uint32_t(labels.rows), &header);
  // Bit depth; colour type 0 (gray); deflate; filter method 0; no
  // interlace.
  header.append({char(sixteen ? 16 : 8), 0, 0, 0, 0});
  std::string png(kPngSignature, kPngSignatureSize);
  png.reserve(png.size() + 3 * 12 + header.size() + compressed.size());
  AppendChunk("IHDR", header, &png);
  AppendChunk("IDAT", compressed, &png);
  AppendChunk("IEND", "", &png);
  return png;
}

std::string EncodeRaw(const cv::Mat& labels) {
  std::string out;
  if (labels.depth() == CV_8U) {
    out.resize(static_cast<size_t>(labels.total()));
    char* dst = out.data();
    for (int y = 0; y < labels.rows; ++y) {
      std::memcpy(dst, labels.ptr<uint8_t>(y), labels.cols);
      dst += labels.cols;
    }
    return out;
  }
  // Byte by byte so the result is little-endian on any host.
  out.resize(static_cast<size_t>(labels.total()) * 2);
  char* dst = out.data();
  for (int y = 0; y < labels.rows; ++y) {
    const uint16_t* row = labels.ptr<uint16_t>(y);
    for (int x = 0; x < labels.cols; ++x) {
      *dst++ = static_cast<char>(row[x] & 0xff);
      *dst++ = static_cast<char>(row[x] >> 8);
    }
  }
  return out;
}

template <typename T>
std::string EncodeRleTyped(const cv::Mat& labels) {
  std::string out;
  // Runs continue across row ends: the map is one row-major sequence.
  uint64_t current = labels.ptr<T>(0)[0];
  uint64_t run = 0;
  for (int y = 0; y < labels.rows; ++y) {
    const T* row = labels.ptr<T>(y);
    for (int x = 0; x < labels.cols; ++x) {
      if (row[x] == current) {
        ++run;
        continue;
      }
      AppendVarint(current, &out);
      AppendVarint(run, &out);
      current = row[x];
      run = 1;
    }
  }
  AppendVarint(current, &out);
  AppendVarint(run, &out);
  return out;
}

absl::Status CheckSize(int width, int height) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask size ", width, "x", height,
                     " is invalid: width and height must be positive"));
  }
  return absl::OkStatus();
}

absl::StatusOr<cv::Mat> DecodePng(absl::string_view data, int width,
                                  int height) {
  if (data.size() < kPngSignatureSize ||
      std::memcmp(data.data(), kPngSignature, kPngSignatureSize) != 0) {
    return absl::InvalidArgumentError(
        "PNG mask data does not start with the PNG signature");
  }
  // Compare the header's size first so a wrong or hostile mask is refused
  // before anything is inflated.
  if (data.size() >= 24) {
    auto be32 = [&](size_t offset) {
      const auto* p = reinterpret_cast<const uint8_t*>(data.data()) + offset;
      return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
             (uint32_t{p[2]} << 8) | uint32_t{p[3]};
    };
    const uint32_t png_width = be32(16);
    const uint32_t png_height = be32(20);
    if (png_width != static_cast<uint32_t>(width) ||
        png_height != static_cast<uint32_t>(height)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PNG mask is ", png_width, "x", png_height,
                       " but the mask size is ", width, "x", height));
    }
  }
  cv::Mat labels;
  try {
    const cv::Mat buffer(1, static_cast<int>(data.size()), CV_8UC1,
                         const_cast<char*>(data.data()));
    labels = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot decode the PNG mask: ", e.what()));
  }
  if (labels.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot decode the PNG mask (", data.size(), " bytes): corrupt data"));
  }
  if (labels.type() != CV_8UC1 && labels.type() != CV_16UC1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PNG mask decodes to ", cv::typeToString(labels.type()),
        "; a mask must be an 8- or 16-bit single-channel grayscale PNG"));
  }
  if (labels.cols != width || labels.rows != height) {
    return absl::InvalidArgumentError(
        absl::StrCat("PNG mask is ", labels.cols, "x", labels.rows,
                     " but the mask size is ", width, "x", height));
  }
  return labels;
}

absl::StatusOr<cv::Mat> DecodeRaw(absl::string_view data, int width,
                                  int height) {
  const size_t pixels = static_cast<size_t>(width) * height;
  const auto* src = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() == pixels) {
    cv::Mat labels(height, width, CV_8UC1);
    std::memcpy(labels.data, src, pixels);
    return labels;
  }
  if (data.size() == pixels * 2) {
    cv::Mat labels(height, width, CV_16UC1);
    auto* dst = labels.ptr<uint16_t>(0);
    for (size_t i = 0; i < pixels; ++i) {
      dst[i] = static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
    }
    return labels;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("RAW mask has ", data.size(), " bytes; a ", width, "x",
                   height, " mask needs ", pixels, " (uint8 ids) or ",
                   pixels * 2, " (uint16 ids) bytes"));
}

absl::StatusOr<cv::Mat> DecodeRle(absl::string_view data, int width,
                                  int height) {
  const uint64_t pixels = static_cast<uint64_t>(width) * height;
  // First pass: validate everything and find the widest id, so that nothing is
  // allocated for data that does not describe exactly width x height pixels.
  uint64_t covered = 0;
  uint64_t max_id = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t pair_start = pos;
    uint64_t id = 0;
    uint64_t run = 0;
    SEGSERVE_RETURN_IF_ERROR(ReadVarint(data, &pos, "class id", &id));
    SEGSERVE_RETURN_IF_ERROR(ReadVarint(data, &pos, "run length", &run));
    if (id > 0xffff) {
      return absl::InvalidArgumentError(
          absl::StrCat("RLE mask has class id ", id, " at byte ", pair_start,
                       "; ids must be at most 65535"));
    }
    if (run == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("RLE mask has a zero run length at byte ", pair_start,
                       "; every run must cover at least one pixel"));
    }
    if (run > pixels - covered) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RLE mask runs overflow the ", width, "x", height, " mask (", pixels,
          " pixels): the run of ", run, " pixels at byte ", pair_start,
          " starts at pixel ", covered));
    }
    covered += run;
    if (id > max_id) max_id = id;
  }
  if (covered != pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("RLE mask covers ", covered, " pixels; a ", width, "x",
                     height, " mask needs ", pixels));
  }
  cv::Mat labels(height, width, max_id > 0xff ? CV_16UC1 : CV_8UC1);
  pos = 0;
  uint64_t next = 0;
  while (pos < data.size()) {
    uint64_t id = 0;
    uint64_t run = 0;
    // Already validated above.
    (void)ReadVarint(data, &pos, "class id", &id);
    (void)ReadVarint(data, &pos, "run length", &run);
    if (labels.depth() == CV_8U) {
      std::memset(labels.data + next, static_cast<int>(id), run);
    } else {
      auto* dst = labels.ptr<uint16_t>(0) + next;
      std::fill(dst, dst + run, static_cast<uint16_t>(id));
    }
    next += run;
  }
  return labels;
}

}  // namespace

absl::StatusOr<std::string> EncodeMask(const cv::Mat& labels,
                                       MaskFormat format) {
  SEGSERVE_RETURN_IF_ERROR(CheckLabels(labels));
  switch (format) {
    case MaskFormat::kPng:
      return EncodePng(labels);
    case MaskFormat::kRaw:
      return EncodeRaw(labels);
    case MaskFormat::kRle:
      return labels.depth() == CV_8U ? EncodeRleTyped<uint8_t>(labels)
                                     : EncodeRleTyped<uint16_t>(labels);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown mask format ",
                                                 static_cast<int>(format),
                                                 "; allowed: PNG, RAW, RLE"));
}

absl::StatusOr<cv::Mat> DecodeMask(absl::string_view data, MaskFormat format,
                                   int width, int height) {
  SEGSERVE_RETURN_IF_ERROR(CheckSize(width, height));
  switch (format) {
    case MaskFormat::kPng:
      return DecodePng(data, width, height);
    case MaskFormat::kRaw:
      return DecodeRaw(data, width, height);
    case MaskFormat::kRle:
      return DecodeRle(data, width, height);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown mask format ",
                                                 static_cast<int>(format),
                                                 "; allowed: PNG, RAW, RLE"));
}

}  // namespace segserve
