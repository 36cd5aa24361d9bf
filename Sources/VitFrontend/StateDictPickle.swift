/// The pickle of a PyTorch state dict (`data.pkl` in `torch.save`'s zip), read by a machine that
/// knows only the opcodes and globals a state dict needs, as PyTorch's own `weights_only`
/// unpickler does, and refuses everything else by name. Nothing is executed: the few callables
/// a state dict uses (OrderedDict, `_rebuild_tensor_v2`, `_rebuild_parameter`) are recognised and
/// turned into values; every count and length is checked against the bytes left before anything
/// is allocated, and the stack, memo and nesting are bounded.
enum StateDictPickle {
  /// What a pickle builds.
  indirect enum Value {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([Value], depth: Int)
    case list([Value], depth: Int)
    /// Keys in insertion order (an OrderedDict keeps its order).
    case dict([(key: Value, value: Value)], depth: Int)
    /// `module.name`, as GLOBAL names it.
    case global(String)
    /// A storage: `('storage', torch.FloatStorage, key, location, numel)` by persistent id.
    case storage(dtype: String, key: String, elements: Int)
    /// `_rebuild_tensor_v2(storage, offset, size, stride, …)`.
    case tensor(storage: Value, offset: Int, shape: [Int], strides: [Int])
  }

  /// The globals a state dict uses, and nothing else (PyTorch's `_get_allowed_globals`, the
  /// part of it a tensor state dict reaches).
  static let storageTypes: [String: String] = [
    "torch.FloatStorage": "F32", "torch.HalfStorage": "F16", "torch.BFloat16Storage": "BF16",
    "torch.DoubleStorage": "F64", "torch.LongStorage": "I64", "torch.IntStorage": "I32", "torch.ShortStorage": "I16",
    "torch.CharStorage": "I8", "torch.ByteStorage": "U8", "torch.BoolStorage": "BOOL",
  ]
  static let callables: Set<String> = [
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
  ]
  /// Limits that keep a hostile pickle from allocating or recursing without bound.
  static let maxStack = 1 << 20
  static let maxMemo = 1 << 20
  static let maxDepth = 64

  /// How deep a value nests (containers know theirs, so this is O(1)).
  static func nesting(_ value: Value) -> Int {
    switch value {
    case .tuple(_, let depth), .list(_, let depth), .dict(_, let depth): depth
    case .tensor: 1
    default: 0
    }
  }

  /// Runs `bytes`; `fail` builds the error for a reason.
  static func load(_ bytes: ArraySlice<UInt8>, fail: (String) -> InputError) throws(InputError) -> Value {
    var at = bytes.startIndex
    var stack: [Value] = []
    var marks: [Int] = []
    var memo: [Int: Value] = [:]

    func need(_ count: Int) throws(InputError) {
      guard count >= 0, count <= bytes.endIndex - at else { throw fail("data.pkl is cut short at byte \(at - bytes.startIndex)") }
    }
    func take(_ count: Int) throws(InputError) -> ArraySlice<UInt8> {
      try need(count)
      defer { at += count }
      return bytes[at..<(at + count)]
    }
    func unsigned(_ count: Int) throws(InputError) -> Int {
      var value = 0
      for (shift, byte) in try take(count).enumerated() { value |= Int(byte) << (8 * shift) }
      return value
    }
    func pop() throws(InputError) -> Value {
      guard let value = stack.popLast() else { throw fail("data.pkl pops an empty stack") }
      if let mark = marks.last, stack.count < mark { throw fail("data.pkl pops past a mark") }
      return value
    }
    func popToMark() throws(InputError) -> [Value] {
      guard let mark = marks.popLast(), mark <= stack.count else { throw fail("data.pkl has no mark to pop to") }
      let items = Array(stack[mark...])
      stack.removeSubrange(mark...)
      return items
    }
    func push(_ value: Value) throws(InputError) {
      guard stack.count < maxStack else { throw fail("data.pkl's stack grows past \(maxStack) values") }
      stack.append(value)
    }
    func text(_ count: Int) throws(InputError) -> String {
      String(decoding: try take(count), as: UTF8.self)
    }
    func line() throws(InputError) -> String {
      guard let newline = bytes[at...].firstIndex(of: 0x0a) else { throw fail("data.pkl is cut short in a GLOBAL") }
      defer { at = newline + 1 }
      return String(decoding: bytes[at..<newline], as: UTF8.self)
    }
    /// The depth of a container of `items`, refused past `maxDepth` (a deep value would
    /// overflow the stack when it is freed).
    func depth(of items: [Value], plus current: Int = 0) throws(InputError) -> Int {
      let depth = max(current, 1 + (items.map(nesting).max() ?? 0))
      guard depth <= maxDepth else { throw fail("data.pkl nests deeper than \(maxDepth)") }
      return depth
    }
    func tuple(_ items: [Value]) throws(InputError) -> Value { .tuple(items, depth: try depth(of: items)) }
    func setItems(_ items: [Value]) throws(InputError) {
      guard items.count % 2 == 0 else { throw fail("data.pkl sets a key without a value") }
      guard case .dict(var pairs, let current)? = stack.last else { throw fail("data.pkl sets items on something that is not a dict") }
      let depth = try depth(of: items, plus: current)
      stack.removeLast()
      for pair in stride(from: 0, to: items.count, by: 2) { pairs.append((items[pair], items[pair + 1])) }
      try push(.dict(pairs, depth: depth))
    }
    func appendItems(_ items: [Value]) throws(InputError) {
      guard case .list(var list, let current)? = stack.last else { throw fail("data.pkl appends to something that is not a list") }
      let depth = try depth(of: items, plus: current)
      stack.removeLast()
      list += items
      try push(.list(list, depth: depth))
    }
    func integers(_ value: Value, _ what: String) throws(InputError) -> [Int] {
      guard case .tuple(let items, _) = value else { throw fail("a tensor's \(what) is not a tuple") }
      var result: [Int] = []
      for item in items {
        guard case .int(let number) = item, number >= 0 else { throw fail("a tensor's \(what) holds something other than a count") }
        result.append(number)
      }
      return result
    }
    func reduce(_ callable: Value, _ arguments: Value) throws(InputError) -> Value {
      guard case .global(let name) = callable else { throw fail("data.pkl calls something that is not a known function") }
      guard case .tuple(let args, _) = arguments else { throw fail("data.pkl calls \(clean(name)) without an argument tuple") }
      switch name {
      case "collections.OrderedDict":
        return .dict([], depth: 1)
      case "torch._utils._rebuild_tensor_v2":
        guard args.count >= 4, case .storage = args[0], case .int(let offset) = args[1], offset >= 0 else {
          throw fail("a tensor is rebuilt from something other than a storage and an offset")
        }
        return .tensor(storage: args[0], offset: offset, shape: try integers(args[2], "shape"), strides: try integers(args[3], "stride"))
      case "torch._utils._rebuild_parameter":
        guard let tensor = args.first, case .tensor = tensor else { throw fail("a parameter is rebuilt from something other than a tensor") }
        return tensor
      default:
        throw fail("data.pkl calls \(clean(name)), which a state dict does not need; vitc reads only tensors, dicts and lists")
      }
    }

    while true {
      let opcode = try unsigned(1)
      switch opcode {
      case 0x80: _ = try unsigned(1)  // PROTO
      case 0x95: _ = try unsigned(8)  // FRAME
      case 0x2e: return try pop()  // STOP
      case 0x7d: try push(.dict([], depth: 1))  // EMPTY_DICT
      case 0x5d: try push(.list([], depth: 1))  // EMPTY_LIST
      case 0x29: try push(.tuple([], depth: 1))  // EMPTY_TUPLE
      case 0x28:  // MARK
        guard marks.count < maxDepth else { throw fail("data.pkl nests marks deeper than \(maxDepth)") }
        marks.append(stack.count)
      case 0x4e: try push(.none)  // NONE
      case 0x88: try push(.bool(true))  // NEWTRUE
      case 0x89: try push(.bool(false))  // NEWFALSE
      case 0x4a: try push(.int(Int(Int32(truncatingIfNeeded: UInt32(try unsigned(4))))))  // BININT
      case 0x4b: try push(.int(try unsigned(1)))  // BININT1
      case 0x4d: try push(.int(try unsigned(2)))  // BININT2
      case 0x8a:  // LONG1: a little-endian two's complement integer of n bytes
        let count = try unsigned(1)
        guard count <= 8 else { throw fail("data.pkl holds an integer wider than 64 bits") }
        let raw = try take(count)
        var value: UInt64 = 0
        for (shift, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
        if count > 0 && count < 8 && raw.last! & 0x80 != 0 { value |= ~0 << (8 * UInt64(count)) }
        try push(.int(Int(Int64(bitPattern: value))))
      case 0x47:  // BINFLOAT (big-endian)
        var bits: UInt64 = 0
        for byte in try take(8) { bits = bits << 8 | UInt64(byte) }
        try push(.float(Double(bitPattern: bits)))
      case 0x58: try push(.string(try text(try unsigned(4))))  // BINUNICODE
      case 0x8c: try push(.string(try text(try unsigned(1))))  // SHORT_BINUNICODE
      case 0x8d:  // BINUNICODE8
        let count = try unsigned(8)
        try push(.string(try text(count)))
      case 0x55: try push(.string(try text(try unsigned(1))))  // SHORT_BINSTRING (old protocol)
      case 0x54: try push(.string(try text(try unsigned(4))))  // BINSTRING
      case 0x74: try push(try tuple(try popToMark()))  // TUPLE
      case 0x85: try push(try tuple([try pop()]))  // TUPLE1
      case 0x86:  // TUPLE2
        let b = try pop()
        try push(try tuple([try pop(), b]))
      case 0x87:  // TUPLE3
        let c = try pop()
        let b = try pop()
        try push(try tuple([try pop(), b, c]))
      case 0x6c:  // LIST
        let items = try popToMark()
        try push(.list(items, depth: try depth(of: items)))
      case 0x64:  // DICT
        let items = try popToMark()
        try push(.dict([], depth: 1))
        try setItems(items)
      case 0x73:  // SETITEM
        let value = try pop()
        let key = try pop()
        try setItems([key, value])
      case 0x75: try setItems(try popToMark())  // SETITEMS
      case 0x61: try appendItems([try pop()])  // APPEND
      case 0x65: try appendItems(try popToMark())  // APPENDS
      case 0x71, 0x72, 0x94:  // BINPUT, LONG_BINPUT, MEMOIZE
        let index = opcode == 0x71 ? try unsigned(1) : opcode == 0x72 ? try unsigned(4) : memo.count
        guard memo.count < maxMemo else { throw fail("data.pkl memoizes more than \(maxMemo) values") }
        guard let top = stack.last else { throw fail("data.pkl memoizes an empty stack") }
        memo[index] = top
      case 0x68, 0x6a:  // BINGET, LONG_BINGET
        let index = try unsigned(opcode == 0x68 ? 1 : 4)
        guard let value = memo[index] else { throw fail("data.pkl reads memo \(index), which it never wrote") }
        try push(value)
      case 0x63:  // GLOBAL module\nname\n
        let module = try line()
        let name = try line()
        let full = module + "." + name
        guard callables.contains(full) || storageTypes[full] != nil else {
          throw fail("data.pkl refers to \(clean(full)), which a state dict does not need; vitc reads only tensors, dicts and lists")
        }
        try push(.global(full))
      case 0x93:  // STACK_GLOBAL
        guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
          throw fail("data.pkl's STACK_GLOBAL names are not strings")
        }
        let full = module + "." + name
        guard callables.contains(full) || storageTypes[full] != nil else {
          throw fail("data.pkl refers to \(clean(full)), which a state dict does not need; vitc reads only tensors, dicts and lists")
        }
        try push(.global(full))
      case 0x52:  // REDUCE
        let arguments = try pop()
        try push(try reduce(try pop(), arguments))
      case 0x62:  // BUILD: OrderedDict's `_metadata` attribute and parameter state; ignored
        _ = try pop()
        guard !stack.isEmpty else { throw fail("data.pkl builds on an empty stack") }
      case 0x51:  // BINPERSID: ('storage', storage type, key, location, numel)
        guard case .tuple(let id, _) = try pop(), id.count == 5, case .string("storage") = id[0], case .global(let type) = id[1],
          let dtype = storageTypes[type], case .string(let key) = id[2], case .int(let elements) = id[4], elements >= 0
        else {
          throw fail("data.pkl has a persistent id that is not a storage")
        }
        try push(.storage(dtype: dtype, key: key, elements: elements))
      default:
        throw fail("data.pkl uses pickle opcode 0x\(String(opcode, radix: 16)), which a state dict does not need")
      }
    }
  }
}
