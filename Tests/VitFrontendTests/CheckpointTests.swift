import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR

/// PyTorch checkpoints (`torch.save`'s zip), made by tools/make_checkpoint_fixtures.py.
@Suite struct CheckpointTests {
  static func fixture(_ name: String) -> String { repositoryPath("Tests/Fixtures/checkpoints/\(name)") }

  /// The same weights as the safetensors fixture, tensor by tensor, bit for bit (F32, F16, BF16).
  @Test func timmCheckpointHoldsTheSafetensorsWeights() throws {
    let checkpoint = try WeightsReader.open(path: Self.fixture("timm-tiny.pth"))
    let reference = try SafetensorsFile(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    #expect(checkpoint.names == reference.names)
    for name in reference.names {
      #expect(checkpoint.entries[name]?.dtype == reference.entries[name]?.dtype, "\(name)")
      let (mine, theirs) = (try checkpoint.tensor(name), try reference.tensor(name))
      #expect(mine.shape == theirs.shape && mine.scalars.map(\.bitPattern) == theirs.scalars.map(\.bitPattern), "\(name)")
    }
  }

  /// A training checkpoint: the state dict under "model", a view at an offset into its storage,
  /// a storage shared by two names, an int64 buffer listed but not convertible.
  @Test func nestedStateDictWithViewsAndSharedStorage() throws {
    let file = try WeightsReader.open(path: Self.fixture("nested.pth"))
    #expect(file.names == ["a", "bf", "bf_again", "half", "steps", "view"])
    #expect(try file.tensor("a") == Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]))
    #expect(try file.tensor("view") == Tensor(shape: [4], scalars: [1, 1.5, 2, 2.5]))
    #expect(try file.tensor("half") == Tensor(shape: [2], scalars: [0.5, -0.25]))
    #expect(try file.tensor("bf") == Tensor(shape: [3], scalars: [1.5, -2.25, 3]))
    #expect(file.entries["bf"]?.byteRange == file.entries["bf_again"]?.byteRange)
    #expect(file.entries["steps"]?.dtype == "I64" && file.entries["steps"]?.shape == [])
    #expect(throws: InputError.self) { try file.tensor("steps") }
  }

  /// Files vitc refuses, each with one line that says why.
  @Test(arguments: [
    ("legacy.pth", "legacy (pre-1.6, non-zip) format; re-save it"),
    ("transposed.pth", "tensor 't' is not contiguous (a view); save tensor.contiguous()"),
    ("evil.pth", "data.pkl refers to posix.system, which a state dict does not need"),
    // Found by tools/fuzz.sh checkpoint: a ZIP64 locator in a file shorter than a ZIP64 record.
    ("fuzz-zip64-locator.pth", "the ZIP64 end-of-directory locator points outside the file"),
  ])
  func refusedWithOneLine(file: String, message: String) throws {
    try? FileManager.default.removeItem(atPath: "/tmp/vitc-evil-pickle")
    do {
      _ = try WeightsReader.open(path: Self.fixture(file))
      Issue.record("\(file) was accepted")
    } catch {
      #expect(error.description.contains(message), "\(error.description)")
      #expect(error.description.hasPrefix(Self.fixture(file) + ": error: PyTorch checkpoint: "))
      #expect(!error.description.contains("\n"))
    }
    #expect(!FileManager.default.fileExists(atPath: "/tmp/vitc-evil-pickle"), "the pickle ran")
  }

  /// Every prefix of a checkpoint, and every single-byte corruption of its directory and
  /// pickle, is refused or read, never a trap.
  @Test func cutAndCorruptedCheckpointsNeverTrap() throws {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.fixture("nested.pth"))))
    var refused = 0
    for cut in stride(from: 0, to: bytes.count, by: 7) {
      do { _ = try TorchCheckpoint.read(bytes: Array(bytes[..<cut]), path: "cut.pth") } catch { refused += 1 }
    }
    #expect(refused == (bytes.count + 6) / 7)  // a prefix has no end-of-directory record
    for index in bytes.indices {
      var corrupt = bytes
      corrupt[index] ^= 0xA5
      _ = try? TorchCheckpoint.read(bytes: corrupt, path: "corrupt.pth")
    }
  }
}
