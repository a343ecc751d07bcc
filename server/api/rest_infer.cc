#include "server/api/rest_infer.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/client_text.h"
#include "common/status_macros.h"
#include "server/api/infer_request.h"
#include "server/api/json_util.h"

namespace segserve {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ParameterMap = google::protobuf::Map<std::string, InferParameter>;

std::string KeyOf(const rapidjson::Value& key) {
  return QuoteClientText(
      absl::string_view(key.GetString(), key.GetStringLength()));
}

// A JSON parameter value as an InferParameter: a boolean, an integer, a
// number or a string.
absl::Status ToParameter(absl::string_view where, const rapidjson::Value& value,
                         InferParameter* out) {
  if (value.IsBool()) {
    out->set_bool_param(value.GetBool());
  } else if (value.IsInt64()) {
    out->set_int64_param(value.GetInt64());
  } else if (value.IsUint64()) {
    out->set_uint64_param(value.GetUint64());
  } else if (value.IsNumber()) {
    out->set_double_param(value.GetDouble());
  } else if (value.IsString()) {
    out->set_string_param(
        std::string(value.GetString(), value.GetStringLength()));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is ", JsonTypeName(value),
                     "; a parameter is a boolean, a number or a string"));
  }
  return absl::OkStatus();
}

// Copies the parameters object `parameters` into `out`, but those `take`
// handles (returning true when it took one).
template <typename Take>
absl::Status ReadParameters(absl::string_view where,
                            const rapidjson::Value& parameters,
                            ParameterMap* out, Take take) {
  if (!parameters.IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " parameters is ",
                                                   JsonTypeName(parameters),
                                                   "; send an object"));
  }
  for (const auto& member : parameters.GetObject()) {
    const std::string name(member.name.GetString(),
                           member.name.GetStringLength());
    SEGSERVE_ASSIGN_OR_RETURN(bool taken, take(name, member.value));
    if (taken) continue;
    SEGSERVE_RETURN_IF_ERROR(
        ToParameter(absl::StrCat(where, " parameter ", KeyOf(member.name)),
                    member.value, &(*out)[name]));
  }
  return absl::OkStatus();
}

// Appends the elements of `data` (nested arrays flattened, row-major) to
// `raw`: UINT8 as bytes, BYTES as 4-byte little-endian lengths and bytes.
absl::Status FlattenData(const std::string& input, const std::string& datatype,
                         const rapidjson::Value& data, std::string* raw,
                         int depth = 0) {
  if (data.IsArray()) {
    for (const rapidjson::Value& element : data.GetArray()) {
      SEGSERVE_RETURN_IF_ERROR(
          FlattenData(input, datatype, element, raw, depth + 1));
    }
    return absl::OkStatus();
  }
  if (depth == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", input, " data is ", JsonTypeName(data),
                     "; send an array of its elements"));
  }
  if (datatype == "UINT8") {
    if (!data.IsUint() || data.GetUint() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", input, " is UINT8 and an element of its data is ",
          data.IsNumber() ? "a number outside 0..255" : JsonTypeName(data),
          "; UINT8 elements are integers 0..255"));
    }
    raw->push_back(char(data.GetUint()));
    return absl::OkStatus();
  }
  // BYTES
  if (!data.IsString()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", input,
                     " is BYTES and an element of its data "
                     "is ",
                     JsonTypeName(data),
                     "; BYTES elements are strings (send images as binary "
                     "data: the binary tensor data extension)"));
  }
  AppendBytesElement(
      absl::string_view(data.GetString(), data.GetStringLength()), raw);
  return absl::OkStatus();
}

absl::Status ReadInput(const rapidjson::Value& json, absl::string_view* binary,
                       ModelInferRequest* request) {
  if (!json.IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an element of inputs is ", JsonTypeName(json),
        "; each input is an object with name, shape, datatype and data"));
  }
  ModelInferRequest::InferInputTensor* input = request->add_inputs();
  const rapidjson::Value* data = nullptr;
  std::optional<uint64_t> binary_size;
  for (const auto& member : json.GetObject()) {
    const absl::string_view key(member.name.GetString(),
                                member.name.GetStringLength());
    const rapidjson::Value& value = member.value;
    if (key == "name" || key == "datatype") {
      if (!value.IsString()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", key, " is ", JsonTypeName(value), "; send a string"));
      }
      std::string text(value.GetString(), value.GetStringLength());
      key == "name" ? input->set_name(std::move(text))
                    : input->set_datatype(std::move(text));
    } else if (key == "shape") {
      if (!value.IsArray()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input shape is ", JsonTypeName(value),
                         "; send an array of dimensions"));
      }
      for (const rapidjson::Value& dim : value.GetArray()) {
        if (!dim.IsInt64() || dim.GetInt64() < 0) {
          return absl::InvalidArgumentError(
              "input shape holds something other than a dimension; each is "
              "an integer of 0 or more");
        }
        input->add_shape(dim.GetInt64());
      }
    } else if (key == "data") {
      data = &value;
    } else if (key == "parameters") {
      SEGSERVE_RETURN_IF_ERROR(ReadParameters(
          "input", value, input->mutable_parameters(),
          [&binary_size](const std::string& name,
                         const rapidjson::Value& v) -> absl::StatusOr<bool> {
            if (name != "binary_data_size") return false;
            if (!v.IsUint64()) {
              return absl::InvalidArgumentError(
                  "input parameter binary_data_size must be an integer of 0 "
                  "or more (the input's bytes in the binary data)");
            }
            binary_size = v.GetUint64();
            return true;
          }));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown input key ", KeyOf(member.name),
                       "; allowed: name, shape, datatype, parameters, data"));
    }
  }
  const std::string name = QuoteClientText(input->name());
  if (binary_size.has_value() == (data != nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", name,
        " needs its elements either in data or, with the binary tensor data "
        "extension, as parameters.binary_data_size bytes of binary data; it ",
        data != nullptr ? "has both" : "has neither"));
  }
  std::string* raw = request->add_raw_input_contents();
  if (binary_size.has_value()) {
    if (*binary_size > binary->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " says binary_data_size ", *binary_size, " but ",
          binary->size(), " bytes of binary data remain in the body"));
    }
    raw->assign(binary->data(), size_t(*binary_size));
    binary->remove_prefix(size_t(*binary_size));
    return absl::OkStatus();
  }
  if (input->datatype() != "UINT8" && input->datatype() != "BYTES") {
    // Left empty: the frontend's check says which datatypes are taken.
    return absl::OkStatus();
  }
  return FlattenData(name, input->datatype(), *data, raw);
}

absl::Status ReadOutput(const rapidjson::Value& json,
                        ModelInferRequest* request, RestOutputs* outputs) {
  if (!json.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("an element of outputs is ", JsonTypeName(json),
                     "; each output is an object with a name"));
  }
  auto* output = request->add_outputs();
  bool binary = false;
  for (const auto& member : json.GetObject()) {
    const absl::string_view key(member.name.GetString(),
                                member.name.GetStringLength());
    if (key == "name") {
      if (!member.value.IsString()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "output name is ", JsonTypeName(member.value), "; send a string"));
      }
      output->set_name(std::string(member.value.GetString(),
                                   member.value.GetStringLength()));
    } else if (key == "parameters") {
      SEGSERVE_RETURN_IF_ERROR(ReadParameters(
          "output", member.value, output->mutable_parameters(),
          [&binary](const std::string& name,
                    const rapidjson::Value& v) -> absl::StatusOr<bool> {
            if (name != "binary_data") return false;
            if (!v.IsBool()) {
              return absl::InvalidArgumentError(
                  "output parameter binary_data must be true or false");
            }
            binary = v.GetBool();
            return true;
          }));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output key ", KeyOf(member.name),
                       "; allowed: name, parameters"));
    }
  }
  if (binary) outputs->binary.insert(output->name());
  return absl::OkStatus();
}

void WriteShape(const ModelInferResponse::InferOutputTensor& output,
                JsonWriter& writer) {
  writer.Key("shape");
  writer.StartArray();
  for (int64_t dim : output.shape()) writer.Int64(dim);
  writer.EndArray();
}

// The elements of `raw` (an output's raw contents) as JSON.
absl::Status WriteData(const std::string& datatype, absl::string_view raw,
                       JsonWriter& writer) {
  writer.StartArray();
  if (datatype == "UINT8") {
    for (unsigned char byte : raw) writer.Uint(byte);
  } else if (datatype == "UINT16") {
    for (size_t i = 0; i + 1 < raw.size(); i += 2) {
      writer.Uint(uint8_t(raw[i]) | (unsigned(uint8_t(raw[i + 1])) << 8));
    }
  } else if (datatype == "INT64") {
    for (size_t i = 0; i + 7 < raw.size(); i += 8) {
      uint64_t value = 0;
      for (int b = 7; b >= 0; --b) value = (value << 8) | uint8_t(raw[i + b]);
      writer.Int64(int64_t(value));
    }
  } else if (datatype == "BYTES") {
    while (raw.size() >= 4) {
      uint32_t length = 0;
      for (int b = 3; b >= 0; --b) length = (length << 8) | uint8_t(raw[b]);
      raw.remove_prefix(4);
      if (length > raw.size()) break;
      const std::string encoded = absl::Base64Escape(raw.substr(0, length));
      writer.String(encoded.data(), rapidjson::SizeType(encoded.size()));
      raw.remove_prefix(length);
    }
  } else {
    return absl::InternalError(
        absl::StrCat("no JSON form for an output of datatype ", datatype));
  }
  writer.EndArray();
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseRestInferRequest(absl::string_view body,
                                   std::optional<size_t> json_length,
                                   ModelInferRequest* request,
                                   RestOutputs* outputs) {
  absl::string_view json = body;
  absl::string_view binary;
  if (json_length.has_value()) {
    if (*json_length > body.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kInferenceHeaderContentLength, " is ", *json_length,
                       " but the body holds ", body.size(), " bytes"));
    }
    json = body.substr(0, *json_length);
    binary = body.substr(*json_length);
  }
  rapidjson::Document document;
  SEGSERVE_RETURN_IF_ERROR(ParseJson(json, &document));
  if (!document.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the infer request is ", JsonTypeName(document),
                     "; send an object with inputs"));
  }
  bool has_inputs = false;
  for (const auto& member : document.GetObject()) {
    const absl::string_view key(member.name.GetString(),
                                member.name.GetStringLength());
    const rapidjson::Value& value = member.value;
    if (key == "id") {
      if (!value.IsString()) {
        return absl::InvalidArgumentError(
            absl::StrCat("id is ", JsonTypeName(value), "; send a string"));
      }
      request->set_id(std::string(value.GetString(), value.GetStringLength()));
    } else if (key == "parameters") {
      SEGSERVE_RETURN_IF_ERROR(ReadParameters(
          "the request's", value, request->mutable_parameters(),
          [outputs](const std::string& name,
                    const rapidjson::Value& v) -> absl::StatusOr<bool> {
            if (name != "binary_data_output") return false;
            if (!v.IsBool()) {
              return absl::InvalidArgumentError(
                  "parameter binary_data_output must be true or false");
            }
            outputs->all_binary = v.GetBool();
            return true;
          }));
    } else if (key == "inputs" || key == "outputs") {
      if (!value.IsArray()) {
        return absl::InvalidArgumentError(absl::StrCat(
            key, " is ", JsonTypeName(value), "; send an array of objects"));
      }
      for (const rapidjson::Value& each : value.GetArray()) {
        SEGSERVE_RETURN_IF_ERROR(key == "inputs"
                                     ? ReadInput(each, &binary, request)
                                     : ReadOutput(each, request, outputs));
      }
      has_inputs = has_inputs || key == "inputs";
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key ", KeyOf(member.name),
                       " in the infer request; allowed: id, parameters, "
                       "inputs, outputs"));
    }
  }
  if (!has_inputs || request->inputs_size() == 0) {
    return absl::InvalidArgumentError(
        "the infer request has no inputs; send inputs: [{name: \"IMAGE\", "
        "...}]");
  }
  if (!binary.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(binary.size(),
                     " bytes of binary data follow the JSON that no input's "
                     "binary_data_size accounts for"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RestInferBody> WriteRestInferResponse(
    const ModelInferResponse& response, const RestOutputs& outputs) {
  if (response.raw_output_contents_size() != response.outputs_size()) {
    return absl::InternalError("the answer's outputs lost their contents");
  }
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  std::string binary;
  bool any_binary = false;
  writer.StartObject();
  writer.Key("model_name");
  writer.String(response.model_name().c_str());
  writer.Key("model_version");
  writer.String(response.model_version().c_str());
  if (!response.id().empty()) {
    writer.Key("id");
    writer.String(response.id().data(),
                  rapidjson::SizeType(response.id().size()));
  }
  writer.Key("outputs");
  writer.StartArray();
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const std::string& raw = response.raw_output_contents(i);
    writer.StartObject();
    writer.Key("name");
    writer.String(output.name().c_str());
    writer.Key("datatype");
    writer.String(output.datatype().c_str());
    WriteShape(output, writer);
    if (outputs.IsBinary(output.name())) {
      any_binary = true;
      writer.Key("parameters");
      writer.StartObject();
      writer.Key("binary_data_size");
      writer.Uint64(raw.size());
      writer.EndObject();
      binary += raw;
    } else {
      if (output.datatype() == "BYTES") {
        writer.Key("parameters");
        writer.StartObject();
        writer.Key("content_encoding");
        writer.String("base64");
        writer.EndObject();
      }
      writer.Key("data");
      SEGSERVE_RETURN_IF_ERROR(WriteData(output.datatype(), raw, writer));
    }
    writer.EndObject();
  }
  writer.EndArray();
  writer.EndObject();
  RestInferBody out;
  out.body.assign(buffer.GetString(), buffer.GetSize());
  if (any_binary) {
    out.json_length = out.body.size();
    out.body += binary;
  }
  return out;
}

}  // namespace segserve
