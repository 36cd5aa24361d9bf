import VitIR

/// PyTorch checkpoints as weights: the zip file `torch.save` writes (`ARCHIVE/data.pkl`, the
/// pickle of the saved object, and `ARCHIVE/data/KEY`, one stored entry per storage). The saved
/// object is a state dict, or a dict holding one under `model`, `state_dict` or `module` (as the
/// official DynamicViT and EViT releases do). Tensors are row-major views of their storage,
/// read in place from the file, F32, F16 or BF16 (others are listed, and refused if bound).
public enum TorchCheckpoint {
  /// The keys under which training scripts nest the state dict, in the order they are tried.
  public static let nestingKeys = ["model", "state_dict", "module"]

  /// Opens a checkpoint file as an indexed weights file.
  public static func open(path: String) throws(InputError) -> SafetensorsFile {
    try read(bytes: try readBytes(path), path: path)
  }

  public static func read(bytes: [UInt8], path: String) throws(InputError) -> SafetensorsFile {
    let fail = { (reason: String) in InputError.checkpoint(path: path, reason: reason) }
    if bytes.count >= 2 && bytes[0] == 0x80 && bytes[1] <= 5 {
      throw fail("this is the legacy (pre-1.6, non-zip) format; re-save it with a current PyTorch: torch.save(torch.load(F, weights_only=True), G)")
    }
    guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4b, bytes[2] == 0x03, bytes[3] == 0x04 else {
      throw fail("not a zip file (torch.save writes one)")
    }
    let directory = try ZipDirectory(bytes, fail: fail)
    guard let pickle = directory.entries.first(where: { $0.name.hasSuffix("/data.pkl") || $0.name == "data.pkl" }) else {
      throw fail("no data.pkl in the zip (not written by torch.save)")
    }
    guard pickle.method == 0 else { throw fail("data.pkl is compressed; torch.save stores it, so re-save the checkpoint") }
    let archive = String(pickle.name.dropLast("data.pkl".count))
    var storages: [String: Range<Int>] = [:]
    for entry in directory.entries where entry.name.hasPrefix(archive + "data/") {
      storages[String(entry.name.dropFirst(archive.count + 5))] = entry.method == 0 ? entry.data : 0..<0
      if entry.method != 0 { throw fail("storage '\(clean(entry.name))' is compressed; torch.save stores storages, so re-save the checkpoint") }
    }

    let root = try StateDictPickle.load(bytes[pickle.data], fail: fail)
    let stateDict = try Self.stateDict(in: root, fail: fail)
    var entries: [String: SafetensorsFile.Entry] = [:]
    for (key, value) in stateDict {
      guard case .string(let name) = key else { throw fail("a state-dict key is not a string") }
      guard case .tensor(let storage, let offset, let shape, let strides) = value,
        case .storage(let dtype, let storageKey, let elements) = storage
      else {
        continue  // a non-tensor entry (a version number, a config): not weights
      }
      guard entries[name] == nil else { throw fail("tensor '\(clean(name))' is saved twice") }
      guard shape.count == strides.count else { throw fail("tensor '\(clean(name))' has \(shape.count) sizes and \(strides.count) strides") }
      var count = 1
      var expected = 1
      for (size, stride) in zip(shape, strides).reversed() {
        guard size <= Limits.maxTensorBytes else { throw fail("tensor '\(clean(name))' is too large") }
        if size > 1 && stride != expected { throw fail("tensor '\(clean(name))' is not contiguous (a view); save tensor.contiguous()") }
        expected *= size
        let (product, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, product <= Limits.maxTensorBytes else { throw fail("tensor '\(clean(name))' is too large") }
        count = product
      }
      guard let size = SafetensorsFile.elementSizes[dtype] else { throw fail("tensor '\(clean(name))' has an unknown dtype") }
      guard let range = storages[storageKey] else { throw fail("tensor '\(clean(name))' lives in storage '\(clean(storageKey))', which the zip does not hold") }
      guard elements.multipliedReportingOverflow(by: size) == (range.count, false) else {
        throw fail("storage '\(clean(storageKey))' holds \(range.count) bytes, not \(elements) × \(size)")
      }
      guard offset <= elements, count <= elements - offset else {
        throw fail("tensor '\(clean(name))' runs past the end of its storage")
      }
      let begin = range.lowerBound + offset * size
      entries[name] = SafetensorsFile.Entry(name: name, dtype: dtype, shape: shape, byteRange: begin..<(begin + count * size))
    }
    guard !entries.isEmpty else { throw fail("no tensors in the state dict") }
    return SafetensorsFile(path: path, bytes: bytes, entries: entries)
  }

  /// The state dict: the saved dict itself when it holds tensors, else the dict under one of
  /// `nestingKeys`.
  static func stateDict(in root: StateDictPickle.Value, fail: (String) -> InputError) throws(InputError)
    -> [(key: StateDictPickle.Value, value: StateDictPickle.Value)]
  {
    guard case .dict(let pairs, _) = root else { throw fail("the saved object is not a dict (vitc reads state dicts)") }
    if pairs.contains(where: { if case .tensor = $0.value { return true } else { return false } }) { return pairs }
    for key in nestingKeys {
      if let nested = pairs.first(where: { if case .string(key) = $0.key { return true } else { return false } }),
        case .dict(let inner, _) = nested.value
      {
        return inner
      }
    }
    throw fail("no tensors in the saved dict, and no state dict under '\(nestingKeys.joined(separator: "', '"))'")
  }
}

/// Weights files by what they hold: a PyTorch checkpoint (a zip) or safetensors.
public enum WeightsReader {
  public static func open(path: String) throws(InputError) -> SafetensorsFile {
    let bytes = try readBytes(path)
    if bytes.starts(with: [0x50, 0x4b, 0x03, 0x04]) || (bytes.count >= 2 && bytes[0] == 0x80 && bytes[1] <= 5) {
      return try TorchCheckpoint.read(bytes: bytes, path: path)
    }
    return try SafetensorsFile(bytes: bytes, path: path)
  }
}
