#include "model/pickle_reader.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segserve {

using caffe2::serialize::PyTorchStreamReader;

const char* KindName(PyValue::Kind kind) {
  switch (kind) {
    case PyValue::Kind::kNone:
      return "None";
    case PyValue::Kind::kBool:
      return "bool";
    case PyValue::Kind::kInt:
      return "int";
    case PyValue::Kind::kFloat:
      return "float";
    case PyValue::Kind::kString:
      return "str";
    case PyValue::Kind::kBytes:
      return "bytes";
    case PyValue::Kind::kTuple:
      return "tuple";
    case PyValue::Kind::kList:
      return "list";
    case PyValue::Kind::kDict:
      return "dict";
    case PyValue::Kind::kGlobal:
      return "class";
    case PyValue::Kind::kStorage:
      return "storage";
    case PyValue::Kind::kTensor:
      return "tensor";
  }
  return "object";
}

namespace {

// Every value made while a pickle is read, so that Unpickle can take apart
// what a hostile pickle left behind (cycles among unreachable values too).
thread_local std::vector<std::weak_ptr<PyValue>>* made_values = nullptr;

PyValuePtr MakeValue(PyValue::Kind kind) {
  auto value = std::make_shared<PyValue>();
  value->kind = kind;
  if (made_values != nullptr) made_values->push_back(value);
  return value;
}

PyValuePtr MakeInt(PyValue::Kind kind, int64_t v) {
  PyValuePtr value = MakeValue(kind);
  value->int_value = v;
  return value;
}

PyValuePtr MakeText(PyValue::Kind kind, std::string text) {
  PyValuePtr value = MakeValue(kind);
  value->text = std::move(text);
  return value;
}

PyValuePtr MakeSequence(PyValue::Kind kind, std::vector<PyValuePtr> items) {
  PyValuePtr value = MakeValue(kind);
  value->items = std::move(items);
  return value;
}

bool StorageDtype(absl::string_view storage_class, torch::ScalarType* dtype) {
  static const auto* const kTypes =
      new std::map<std::string, torch::ScalarType, std::less<>>{
          {"torch.FloatStorage", torch::kFloat},
          {"torch.DoubleStorage", torch::kDouble},
          {"torch.HalfStorage", torch::kHalf},
          {"torch.BFloat16Storage", torch::kBFloat16},
          {"torch.LongStorage", torch::kLong},
          {"torch.IntStorage", torch::kInt},
          {"torch.ShortStorage", torch::kShort},
          {"torch.CharStorage", torch::kChar},
          {"torch.ByteStorage", torch::kByte},
          {"torch.BoolStorage", torch::kBool},
      };
  auto it = kTypes->find(storage_class);
  if (it == kTypes->end()) return false;
  *dtype = it->second;
  return true;
}

class Unpickler {
 public:
  // `archive` holds the tensor data records ("data/<key>").
  Unpickler(absl::string_view pickle, PyTorchStreamReader* archive)
      : pickle_(pickle), archive_(archive) {}

  // The unpickled object, or null with error() set. May throw from LibTorch
  // while reading records; the caller catches.
  PyValuePtr Run() {
    bool stop = false;
    while (!stop) {
      uint8_t op;
      if (!ReadInt(&op) || !Execute(op, &stop)) return nullptr;
    }
    if (stack_.size() != 1) {
      Fail(absl::StrCat("pickle ends with ", stack_.size(),
                        " objects on the stack, expected 1"));
      return nullptr;
    }
    return stack_.back();
  }

  const std::string& error() const { return error_; }

 private:
  bool Fail(absl::string_view message) {
    if (error_.empty()) {
      error_ = absl::StrCat(message, " (at pickle byte ", pos_, ")");
    }
    return false;
  }

  bool ReadBytes(uint64_t n, absl::string_view* out) {
    if (n > pickle_.size() - pos_) return Fail("truncated pickle");
    *out = pickle_.substr(pos_, n);
    pos_ += n;
    return true;
  }

  // Little-endian unsigned or two's-complement integers.
  template <typename T>
  bool ReadInt(T* out) {
    absl::string_view bytes;
    if (!ReadBytes(sizeof(T), &bytes)) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
    }
    *out = static_cast<T>(v);
    return true;
  }

  bool ReadLine(std::string* out) {
    const size_t end = pickle_.find('\n', pos_);
    if (end == absl::string_view::npos) return Fail("truncated pickle");
    *out = std::string(pickle_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }

  template <typename Length>
  bool PushText(PyValue::Kind kind) {
    Length length;
    absl::string_view text;
    if (!ReadInt(&length) || !ReadBytes(length, &text)) return false;
    stack_.push_back(MakeText(kind, std::string(text)));
    return true;
  }

  bool Pop(PyValuePtr* out) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Fail("pickle stack underflow");
    }
    *out = std::move(stack_.back());
    stack_.pop_back();
    return true;
  }

  bool PopToMark(std::vector<PyValuePtr>* items) {
    if (marks_.empty()) return Fail("pickle MARK missing");
    const size_t mark = marks_.back();
    marks_.pop_back();
    items->assign(std::make_move_iterator(stack_.begin() + mark),
                  std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return true;
  }

  bool Top(PyValue::Kind kind, PyValue** out) {
    if (stack_.empty() || stack_.back()->kind != kind) {
      return Fail(
          absl::StrCat("pickle expects a ", KindName(kind), " on the stack"));
    }
    *out = stack_.back().get();
    return true;
  }

  bool Memoize(uint64_t index) {
    if (stack_.empty()) return Fail("pickle stack underflow");
    memo_[index] = stack_.back();
    return true;
  }

  bool Recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) return Fail("pickle memo entry missing");
    stack_.push_back(it->second);
    return true;
  }

  // Runs one opcode: each group below knows its own opcodes.
  bool Execute(uint8_t op, bool* stop) {
    for (auto group : {&Unpickler::FrameOp, &Unpickler::ScalarOp,
                       &Unpickler::ContainerOp, &Unpickler::ObjectOp}) {
      if (std::optional<bool> done = (this->*group)(op, stop)) return *done;
    }
    return Fail(absl::StrFormat("unsupported pickle opcode 0x%02x", op));
  }

  // Protocol, framing, the stack and the memo; nullopt when `op` is not one of
  // them.
  std::optional<bool> FrameOp(uint8_t op, bool* stop) {
    switch (op) {
      case 0x80: {  // PROTO
        uint8_t protocol;
        if (!ReadInt(&protocol)) return false;
        if (protocol < 2 || protocol > 5) {
          return Fail(absl::StrCat("unsupported pickle protocol ", protocol));
        }
        return true;
      }
      case 0x95: {  // FRAME: a length hint only.
        uint64_t ignored;
        return ReadInt(&ignored);
      }
      case '.':  // STOP
        *stop = true;
        return true;
      case '(':  // MARK
        marks_.push_back(stack_.size());
        return true;
      case '0': {  // POP
        PyValuePtr ignored;
        return Pop(&ignored);
      }
      case '1': {  // POP_MARK
        std::vector<PyValuePtr> ignored;
        return PopToMark(&ignored);
      }
      case '2':  // DUP
        if (stack_.empty()) return Fail("pickle stack underflow");
        stack_.push_back(stack_.back());
        return true;
      case 'q': {  // BINPUT
        uint8_t index;
        return ReadInt(&index) && Memoize(index);
      }
      case 'r': {  // LONG_BINPUT
        uint32_t index;
        return ReadInt(&index) && Memoize(index);
      }
      case 0x94:  // MEMOIZE
        return Memoize(memo_.size());
      case 'h': {  // BINGET
        uint8_t index;
        return ReadInt(&index) && Recall(index);
      }
      case 'j': {  // LONG_BINGET
        uint32_t index;
        return ReadInt(&index) && Recall(index);
      }
      default:
        return std::nullopt;
    }
  }

  // None, booleans, numbers, strings and bytes; nullopt when `op` is not one of
  // them.
  std::optional<bool> ScalarOp(uint8_t op, bool* stop) {
    switch (op) {
      case 'N':  // NONE
        stack_.push_back(MakeValue(PyValue::Kind::kNone));
        return true;
      case 0x88:  // NEWTRUE
      case 0x89:  // NEWFALSE
        stack_.push_back(MakeInt(PyValue::Kind::kBool, op == 0x88 ? 1 : 0));
        return true;
      case 'K': {  // BININT1
        uint8_t v;
        if (!ReadInt(&v)) return false;
        stack_.push_back(MakeInt(PyValue::Kind::kInt, v));
        return true;
      }
      case 'M': {  // BININT2
        uint16_t v;
        if (!ReadInt(&v)) return false;
        stack_.push_back(MakeInt(PyValue::Kind::kInt, v));
        return true;
      }
      case 'J': {  // BININT
        int32_t v;
        if (!ReadInt(&v)) return false;
        stack_.push_back(MakeInt(PyValue::Kind::kInt, v));
        return true;
      }
      case 0x8a: {  // LONG1: n little-endian two's-complement bytes.
        uint8_t n;
        absl::string_view bytes;
        if (!ReadInt(&n) || !ReadBytes(n, &bytes)) return false;
        if (n > 8) return Fail("integer too large");
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) {
          v |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
        }
        if (n > 0 && n < 8 && (static_cast<uint8_t>(bytes[n - 1]) & 0x80)) {
          v |= ~uint64_t{0} << (8 * n);  // Sign-extend.
        }
        stack_.push_back(MakeInt(PyValue::Kind::kInt, static_cast<int64_t>(v)));
        return true;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double.
        absl::string_view bytes;
        if (!ReadBytes(8, &bytes)) return false;
        uint64_t bits = 0;
        for (char c : bytes) bits = (bits << 8) | static_cast<uint8_t>(c);
        PyValuePtr value = MakeValue(PyValue::Kind::kFloat);
        std::memcpy(&value->float_value, &bits, sizeof(bits));
        stack_.push_back(std::move(value));
        return true;
      }
      case 'X':  // BINUNICODE
      case 'T':  // BINSTRING
        return PushText<uint32_t>(PyValue::Kind::kString);
      case 0x8c:  // SHORT_BINUNICODE
      case 'U':   // SHORT_BINSTRING
        return PushText<uint8_t>(PyValue::Kind::kString);
      case 0x8d:  // BINUNICODE8
        return PushText<uint64_t>(PyValue::Kind::kString);
      case 'B':  // BINBYTES
        return PushText<uint32_t>(PyValue::Kind::kBytes);
      case 'C':  // SHORT_BINBYTES
        return PushText<uint8_t>(PyValue::Kind::kBytes);
      case 0x8e:  // BINBYTES8
        return PushText<uint64_t>(PyValue::Kind::kBytes);
      default:
        return std::nullopt;
    }
  }

  // Tuples, lists and dicts; nullopt when `op` is not one of them.
  std::optional<bool> ContainerOp(uint8_t op, bool* stop) {
    switch (op) {
      case ')':  // EMPTY_TUPLE
        stack_.push_back(MakeSequence(PyValue::Kind::kTuple, {}));
        return true;
      case 't': {  // TUPLE
        std::vector<PyValuePtr> items;
        if (!PopToMark(&items)) return false;
        stack_.push_back(MakeSequence(PyValue::Kind::kTuple, std::move(items)));
        return true;
      }
      case 0x85:    // TUPLE1
      case 0x86:    // TUPLE2
      case 0x87: {  // TUPLE3
        std::vector<PyValuePtr> items(op - 0x84);
        for (auto it = items.rbegin(); it != items.rend(); ++it) {
          if (!Pop(&*it)) return false;
        }
        stack_.push_back(MakeSequence(PyValue::Kind::kTuple, std::move(items)));
        return true;
      }
      case ']':  // EMPTY_LIST
        stack_.push_back(MakeSequence(PyValue::Kind::kList, {}));
        return true;
      case 'l': {  // LIST
        std::vector<PyValuePtr> items;
        if (!PopToMark(&items)) return false;
        stack_.push_back(MakeSequence(PyValue::Kind::kList, std::move(items)));
        return true;
      }
      case 'a': {  // APPEND
        PyValuePtr item;
        PyValue* list;
        if (!Pop(&item) || !Top(PyValue::Kind::kList, &list)) return false;
        list->items.push_back(std::move(item));
        return true;
      }
      case 'e': {  // APPENDS
        std::vector<PyValuePtr> items;
        PyValue* list;
        if (!PopToMark(&items) || !Top(PyValue::Kind::kList, &list)) {
          return false;
        }
        for (auto& item : items) list->items.push_back(std::move(item));
        return true;
      }
      case '}':  // EMPTY_DICT
        stack_.push_back(MakeSequence(PyValue::Kind::kDict, {}));
        return true;
      case 'd': {  // DICT
        std::vector<PyValuePtr> items;
        if (!PopToMark(&items)) return false;
        if (items.size() % 2 != 0) return Fail("odd number of dict items");
        stack_.push_back(MakeSequence(PyValue::Kind::kDict, std::move(items)));
        return true;
      }
      case 's': {  // SETITEM
        PyValuePtr key, value;
        PyValue* dict;
        if (!Pop(&value) || !Pop(&key) || !Top(PyValue::Kind::kDict, &dict)) {
          return false;
        }
        dict->items.push_back(std::move(key));
        dict->items.push_back(std::move(value));
        return true;
      }
      case 'u': {  // SETITEMS
        std::vector<PyValuePtr> items;
        PyValue* dict;
        if (!PopToMark(&items) || !Top(PyValue::Kind::kDict, &dict)) {
          return false;
        }
        if (items.size() % 2 != 0) return Fail("odd number of dict items");
        for (auto& item : items) dict->items.push_back(std::move(item));
        return true;
      }
      default:
        return std::nullopt;
    }
  }

  // Globals, storages, REDUCE and BUILD; nullopt when `op` is not one of them.
  std::optional<bool> ObjectOp(uint8_t op, bool* stop) {
    switch (op) {
      case 'c': {  // GLOBAL
        std::string module, name;
        if (!ReadLine(&module) || !ReadLine(&name)) return false;
        stack_.push_back(
            MakeText(PyValue::Kind::kGlobal, absl::StrCat(module, ".", name)));
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        PyValuePtr module, name;
        if (!Pop(&name) || !Pop(&module)) return false;
        if (module->kind != PyValue::Kind::kString ||
            name->kind != PyValue::Kind::kString) {
          return Fail("STACK_GLOBAL expects two strings");
        }
        stack_.push_back(MakeText(PyValue::Kind::kGlobal,
                                  absl::StrCat(module->text, ".", name->text)));
        return true;
      }
      case 'Q': {  // BINPERSID
        PyValuePtr id;
        if (!Pop(&id)) return false;
        PyValuePtr storage = LoadStorage(*id);
        if (!storage) return false;
        stack_.push_back(std::move(storage));
        return true;
      }
      case 'R': {  // REDUCE
        PyValuePtr callable, args;
        if (!Pop(&args) || !Pop(&callable)) return false;
        PyValuePtr result = Reduce(*callable, *args);
        if (!result) return false;
        stack_.push_back(std::move(result));
        return true;
      }
      case 'b': {  // BUILD: sets attributes (a state dict's _metadata).
        PyValuePtr state;
        PyValue* dict;
        if (!Pop(&state)) return false;
        if (!Top(PyValue::Kind::kDict, &dict)) {
          return Fail("attributes are only supported on dicts");
        }
        return true;
      }
      default:
        return std::nullopt;
    }
  }

  // A persistent id ('storage', torch.<Type>Storage, key, location, numel):
  // the tensor data in record data/<key>. Storages are placed on the CPU.
  PyValuePtr LoadStorage(const PyValue& id) {
    const auto& items = id.items;
    torch::ScalarType dtype;
    if (id.kind != PyValue::Kind::kTuple || items.size() < 5 ||
        items[0]->kind != PyValue::Kind::kString ||
        items[0]->text != "storage" ||
        items[1]->kind != PyValue::Kind::kGlobal ||
        items[2]->kind != PyValue::Kind::kString ||
        items[4]->kind != PyValue::Kind::kInt || items[4]->int_value < 0) {
      Fail("unsupported persistent id (expected a tensor storage)");
      return nullptr;
    }
    if (!StorageDtype(items[1]->text, &dtype)) {
      Fail(absl::StrCat("unsupported storage type ", items[1]->text));
      return nullptr;
    }
    const std::string& key = items[2]->text;
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      const std::string record = absl::StrCat("data/", key);
      if (!archive_->hasRecord(record)) {
        Fail(absl::StrCat("archive has no record ", record));
        return nullptr;
      }
      const int64_t numel = items[4]->int_value;
      const size_t nbytes =
          static_cast<size_t>(numel) * c10::elementSize(dtype);
      auto [data, size] = archive_->getRecord(record);
      if (size < nbytes) {
        Fail(absl::StrCat("record ", record, " holds ", size,
                          " bytes, expected ", nbytes));
        return nullptr;
      }
      c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes,
                           std::move(data), /*allocator=*/nullptr,
                           /*resizable=*/false);
      torch::Tensor elements = torch::empty({0}, torch::dtype(dtype));
      elements.set_(storage, 0, {numel}, {1});
      it = storages_.emplace(key, std::move(elements)).first;
    }
    PyValuePtr value = MakeValue(PyValue::Kind::kStorage);
    value->tensor = it->second;
    return value;
  }

  bool IntTuple(const PyValue& value, std::vector<int64_t>* out) {
    if (value.kind != PyValue::Kind::kTuple) return false;
    out->clear();
    for (const auto& item : value.items) {
      if (item->kind != PyValue::Kind::kInt) return false;
      out->push_back(item->int_value);
    }
    return true;
  }

  // _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...).
  PyValuePtr RebuildTensor(const std::vector<PyValuePtr>& args) {
    std::vector<int64_t> sizes, strides;
    if (args.size() < 4 || args[0]->kind != PyValue::Kind::kStorage ||
        args[1]->kind != PyValue::Kind::kInt || !IntTuple(*args[2], &sizes) ||
        !IntTuple(*args[3], &strides) || sizes.size() != strides.size()) {
      Fail("malformed tensor");
      return nullptr;
    }
    const torch::Tensor& storage = args[0]->tensor;
    const int64_t offset = args[1]->int_value;
    // The last element the view touches must lie inside the storage.
    int64_t last = offset;
    bool empty = false;
    bool valid = offset >= 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      valid = valid && sizes[i] >= 0 && strides[i] >= 0;
      empty = empty || sizes[i] == 0;
      if (sizes[i] > 0) last += (sizes[i] - 1) * strides[i];
    }
    if (!valid || (!empty && last >= storage.numel())) {
      Fail("tensor view outside its storage");
      return nullptr;
    }
    PyValuePtr value = MakeValue(PyValue::Kind::kTensor);
    value->tensor = empty ? torch::empty(sizes, storage.options())
                          : storage.as_strided(sizes, strides, offset);
    return value;
  }

  PyValuePtr Reduce(const PyValue& callable, const PyValue& args) {
    if (callable.kind != PyValue::Kind::kGlobal ||
        args.kind != PyValue::Kind::kTuple) {
      Fail("unsupported object construction");
      return nullptr;
    }
    const std::string& name = callable.text;
    const std::vector<PyValuePtr>& a = args.items;
    if (name == "collections.OrderedDict") {
      if (!a.empty()) {
        Fail("OrderedDict built from arguments is not supported");
        return nullptr;
      }
      return MakeSequence(PyValue::Kind::kDict, {});
    }
    if (name == "torch._utils._rebuild_tensor_v2" ||
        name == "torch._utils._rebuild_tensor") {
      return RebuildTensor(a);
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state" ||
        name == "torch.jit._pickle.restore_type_tag") {
      // A Parameter's data, or a value with a TorchScript type tag.
      if (a.empty()) {
        Fail(absl::StrCat("malformed ", name));
        return nullptr;
      }
      return a[0];
    }
    Fail(absl::StrCat("unsupported object of class ", name,
                      " (a state dict holds only tensors)"));
    return nullptr;
  }

  absl::string_view pickle_;
  size_t pos_ = 0;
  PyTorchStreamReader* archive_;
  std::vector<PyValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyValuePtr> memo_;
  std::unordered_map<std::string, torch::Tensor> storages_;
  std::string error_;
};

// A state dict is a few containers deep. Deeper nesting, or a container
// that holds itself, only comes from a hostile or broken file: refused, so
// that nothing after this recurses without bound or leaks a cycle.
constexpr int kMaxNesting = 64;

bool HasItems(const PyValue& value) {
  return value.kind == PyValue::Kind::kTuple ||
         value.kind == PyValue::Kind::kList ||
         value.kind == PyValue::Kind::kDict;
}

// Why `root` is not a tree of at most kMaxNesting levels, or "" when it is;
// `tree` gets every value in it. Iterative: the check must not recurse.
std::string CheckShape(const PyValuePtr& root,
                       std::unordered_set<const PyValue*>* tree) {
  std::unordered_set<const PyValue*> open;  // On the current path.
  struct Visit {
    const PyValue* value;
    size_t next_item;
  };
  std::vector<Visit> path = {{root.get(), 0}};
  tree->insert(root.get());
  open.insert(root.get());
  while (!path.empty()) {
    Visit& top = path.back();
    if (top.next_item == top.value->items.size() || !HasItems(*top.value)) {
      open.erase(top.value);
      path.pop_back();
      continue;
    }
    const PyValue* child = top.value->items[top.next_item++].get();
    if (child == nullptr) continue;
    if (open.count(child) > 0) {
      return "the pickle puts a container inside itself (a cycle), which a "
             "state dict never does";
    }
    if (!tree->insert(child).second) continue;  // Shared, already checked.
    if (path.size() >= kMaxNesting) {
      return absl::StrCat("the pickle nests containers more than ", kMaxNesting,
                          " deep; a state dict is a few levels");
    }
    open.insert(child);
    path.push_back({child, 0});
  }
  return "";
}

}  // namespace

// Takes apart every value in `made` outside `tree` while all of them are
// still held, so that dropping them neither recurses deeply nor leaks a
// cycle.
void Dismantle(const std::vector<std::weak_ptr<PyValue>>& made,
               const std::unordered_set<const PyValue*>& tree) {
  std::vector<PyValuePtr> alive;
  alive.reserve(made.size());
  for (const std::weak_ptr<PyValue>& weak : made) {
    if (PyValuePtr value = weak.lock()) alive.push_back(std::move(value));
  }
  for (const PyValuePtr& value : alive) {
    if (tree.count(value.get()) == 0) value->items.clear();
  }
}

absl::StatusOr<PyValuePtr> Unpickle(absl::string_view pickle,
                                    PyTorchStreamReader* archive) {
  std::vector<std::weak_ptr<PyValue>> made;
  Unpickler unpickler(pickle, archive);
  PyValuePtr root;
  made_values = &made;
  try {
    root = unpickler.Run();
  } catch (...) {
    made_values = nullptr;
    Dismantle(made, {});
    throw;
  }
  made_values = nullptr;
  std::string error = unpickler.error();
  std::unordered_set<const PyValue*> tree;
  if (error.empty()) error = CheckShape(root, &tree);
  if (!error.empty()) tree.clear();
  Dismantle(made, tree);
  if (!error.empty()) return absl::InvalidArgumentError(error);
  return root;
}

}  // namespace segserve
