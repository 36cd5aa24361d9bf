/// The entries of a ZIP archive as `torch.save` writes it (PyTorch's zip format: stored, never
/// compressed, ZIP64 when large), read from its central directory with every offset and size
/// checked against the file. Only what a checkpoint needs: names and where each stored entry's
/// bytes are, so that tensors are read in place rather than copied out.
///
/// (ZIPFoundation, the package index's ZIP library, reads and extracts entries but keeps their
/// data offsets internal, so it can only copy them out; this reader is the 150 lines that
/// mapping needs, and a fuzz target.)
struct ZipDirectory {
  struct Entry {
    var name: String
    /// Where the entry's bytes are in the file.
    var data: Range<Int>
    /// 0 = stored; anything else is compressed, which torch.save never writes.
    var method: Int
  }

  var entries: [Entry]

  /// Reads the central directory of `bytes`. `fail` builds the error for a reason.
  init(_ bytes: [UInt8], fail: (String) -> InputError) throws(InputError) {
    func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
    func fits(_ at: Int, _ count: Int) -> Bool { at >= 0 && count >= 0 && at <= bytes.count && count <= bytes.count - at }

    // The end-of-central-directory record: 22 bytes plus a comment of at most 65535.
    var end = -1
    var at = bytes.count - 22
    while at >= 0 && at >= bytes.count - 22 - 65535 {
      if u32(at) == 0x0605_4b50 {
        end = at
        break
      }
      at -= 1
    }
    guard end >= 0 else { throw fail("no ZIP end-of-directory record (not a zip file, or truncated)") }
    var count = u16(end + 10)
    var directorySize = u32(end + 12)
    var directoryOffset = u32(end + 16)
    // ZIP64: the locator sits right before the record and points at the ZIP64 record.
    if end >= 20 && u32(end - 20) == 0x0706_4b50 {
      let record64 = u64(end - 20 + 8)
      guard bytes.count >= 56, record64 <= UInt64(bytes.count - 56), u32(Int(record64)) == 0x0606_4b50 else {
        throw fail("the ZIP64 end-of-directory locator points outside the file")
      }
      let at64 = Int(record64)
      let (count64, size64, offset64) = (u64(at64 + 32), u64(at64 + 40), u64(at64 + 48))
      guard count64 <= UInt64(bytes.count), size64 <= UInt64(bytes.count), offset64 <= UInt64(bytes.count) else {
        throw fail("the ZIP64 directory is larger than the file")
      }
      (count, directorySize, directoryOffset) = (Int(count64), Int(size64), Int(offset64))
    }
    guard fits(directoryOffset, directorySize) else { throw fail("the ZIP directory runs past the end of the file") }
    // Each directory entry takes at least 46 bytes: a count the directory cannot hold is a lie.
    guard count <= directorySize / 46 else { throw fail("the ZIP directory claims \(count) entries in \(directorySize) bytes") }

    var entries: [Entry] = []
    entries.reserveCapacity(count)
    var cursor = directoryOffset
    for index in 0..<count {
      guard fits(cursor, 46), u32(cursor) == 0x0201_4b50 else { throw fail("ZIP directory entry \(index) is corrupt") }
      let method = u16(cursor + 10)
      var compressedSize = UInt64(u32(cursor + 20))
      var size = UInt64(u32(cursor + 24))
      let nameLength = u16(cursor + 28)
      let extraLength = u16(cursor + 30)
      let commentLength = u16(cursor + 32)
      var headerOffset = UInt64(u32(cursor + 42))
      guard fits(cursor + 46, nameLength + extraLength + commentLength) else { throw fail("ZIP directory entry \(index) is cut short") }
      let name = String(decoding: bytes[(cursor + 46)..<(cursor + 46 + nameLength)], as: UTF8.self)
      // The ZIP64 extra field holds, in this order, whichever of size, compressed size and
      // header offset are 0xFFFFFFFF in the entry.
      var extra = cursor + 46 + nameLength
      let extraEnd = extra + extraLength
      while extra + 4 <= extraEnd {
        let (tag, length) = (u16(extra), u16(extra + 2))
        guard extra + 4 + length <= extraEnd else { throw fail("ZIP directory entry '\(clean(name))' has a corrupt extra field") }
        if tag == 0x0001 {
          var field = extra + 4
          for keyPath in [0, 1, 2] {
            let wide: Bool
            switch keyPath {
            case 0: wide = size == 0xFFFF_FFFF
            case 1: wide = compressedSize == 0xFFFF_FFFF
            default: wide = headerOffset == 0xFFFF_FFFF
            }
            guard wide else { continue }
            guard field + 8 <= extra + 4 + length else { throw fail("ZIP directory entry '\(clean(name))' has a short ZIP64 field") }
            let value = u64(field)
            switch keyPath {
            case 0: size = value
            case 1: compressedSize = value
            default: headerOffset = value
            }
            field += 8
          }
        }
        extra += 4 + length
      }
      guard headerOffset <= UInt64(bytes.count), compressedSize <= UInt64(bytes.count) else {
        throw fail("ZIP entry '\(clean(name))' lies outside the file")
      }
      let local = Int(headerOffset)
      guard fits(local, 30), u32(local) == 0x0403_4b50 else { throw fail("ZIP entry '\(clean(name))' has no local header where the directory says") }
      let dataStart = local + 30 + u16(local + 26) + u16(local + 28)
      guard fits(dataStart, Int(compressedSize)) else { throw fail("ZIP entry '\(clean(name))' runs past the end of the file") }
      if method == 0 && size != compressedSize { throw fail("ZIP entry '\(clean(name))' is stored but its two sizes differ") }
      entries.append(Entry(name: name, data: dataStart..<(dataStart + Int(compressedSize)), method: method))
      cursor += 46 + nameLength + extraLength + commentLength
    }
    self.entries = entries
  }
}
