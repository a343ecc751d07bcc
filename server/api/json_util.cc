#include "server/api/json_util.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"

namespace segserve {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Hands the parser's events to the document, counting how deep they nest.
class DepthLimit {
 public:
  explicit DepthLimit(rapidjson::Document* document) : document_(*document) {}
  bool Null() { return document_.Null(); }
  bool Bool(bool b) { return document_.Bool(b); }
  bool Int(int i) { return document_.Int(i); }
  bool Uint(unsigned u) { return document_.Uint(u); }
  bool Int64(int64_t i) { return document_.Int64(i); }
  bool Uint64(uint64_t u) { return document_.Uint64(u); }
  bool Double(double d) { return document_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return document_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return document_.String(s, n, copy);
  }
  bool StartObject() { return Enter() && document_.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    return document_.Key(s, n, copy);
  }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return document_.EndObject(members);
  }
  bool StartArray() { return Enter() && document_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return document_.EndArray(elements);
  }
  bool too_deep() const { return too_deep_; }

 private:
  bool Enter() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }
  rapidjson::Document& document_;
  int depth_ = 0;
  bool too_deep_ = false;
};

void WriteScalar(const Message& message, const Reflection& reflection,
                 const FieldDescriptor* field, int index, JsonWriter& writer) {
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      writer.Int(repeated ? reflection.GetRepeatedInt32(message, field, index)
                          : reflection.GetInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      writer.Int64(repeated ? reflection.GetRepeatedInt64(message, field, index)
                            : reflection.GetInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      writer.Uint(repeated ? reflection.GetRepeatedUInt32(message, field, index)
                           : reflection.GetUInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      writer.Uint64(repeated
                        ? reflection.GetRepeatedUInt64(message, field, index)
                        : reflection.GetUInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      writer.Double(repeated
                        ? reflection.GetRepeatedDouble(message, field, index)
                        : reflection.GetDouble(message, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      writer.Double(repeated
                        ? reflection.GetRepeatedFloat(message, field, index)
                        : reflection.GetFloat(message, field));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      writer.Bool(repeated ? reflection.GetRepeatedBool(message, field, index)
                           : reflection.GetBool(message, field));
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* value =
          repeated ? reflection.GetRepeatedEnum(message, field, index)
                   : reflection.GetEnum(message, field);
      writer.String(value->name().c_str());
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text =
          repeated ? reflection.GetRepeatedStringReference(message, field,
                                                           index, &scratch)
                   : reflection.GetStringReference(message, field, &scratch);
      writer.String(text.data(), rapidjson::SizeType(text.size()));
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      WriteProtoJson(repeated
                         ? reflection.GetRepeatedMessage(message, field, index)
                         : reflection.GetMessage(message, field),
                     writer);
      break;
  }
}

// A map entry's key, as a JSON object's key.
std::string MapKey(const Message& entry) {
  const Reflection& reflection = *entry.GetReflection();
  const FieldDescriptor* key = entry.GetDescriptor()->map_key();
  switch (key->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return reflection.GetString(entry, key);
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(reflection.GetInt32(entry, key));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(reflection.GetInt64(entry, key));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(reflection.GetUInt32(entry, key));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(reflection.GetUInt64(entry, key));
    case FieldDescriptor::CPPTYPE_BOOL:
      return reflection.GetBool(entry, key) ? "true" : "false";
    default:
      return "";
  }
}

}  // namespace

absl::Status ParseJson(absl::string_view text, rapidjson::Document* document) {
  rapidjson::MemoryStream stream(text.data(), text.size());
  rapidjson::Reader reader;
  DepthLimit handler(document);
  rapidjson::ParseResult result;
  // Populate makes the parsed events the document's value.
  auto parse = [&](rapidjson::Document&) {
    result =
        reader.Parse<rapidjson::kParseIterativeFlag |
                     rapidjson::kParseValidateEncodingFlag>(stream, handler);
    return !result.IsError();
  };
  document->Populate(parse);
  if (handler.too_deep()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the JSON nests deeper than ", kMaxJsonDepth,
                     " objects and arrays, which is the most allowed"));
  }
  if (result.IsError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body is not valid JSON: ",
                     rapidjson::GetParseError_En(result.Code()), " (at byte ",
                     result.Offset(), ")"));
  }
  return absl::OkStatus();
}

void WriteProtoJson(const Message& message, JsonWriter& writer) {
  const Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  writer.StartObject();
  for (const FieldDescriptor* field : fields) {
    writer.Key(field->name().c_str());
    if (field->is_map()) {
      const FieldDescriptor* value = field->message_type()->map_value();
      writer.StartObject();
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        const Message& entry = reflection.GetRepeatedMessage(message, field, i);
        writer.Key(MapKey(entry).c_str());
        WriteScalar(entry, *entry.GetReflection(), value, -1, writer);
      }
      writer.EndObject();
    } else if (field->is_repeated()) {
      writer.StartArray();
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        WriteScalar(message, reflection, field, i, writer);
      }
      writer.EndArray();
    } else {
      WriteScalar(message, reflection, field, -1, writer);
    }
  }
  writer.EndObject();
}

std::string ProtoToJson(const Message& message) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  WriteProtoJson(message, writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ErrorJson(absl::string_view message) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("error");
  writer.String(message.data(), rapidjson::SizeType(message.size()));
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

const char* JsonTypeName(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "a value";
}

}  // namespace segserve
