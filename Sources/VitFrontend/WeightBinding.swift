import VitIR

/// Errors binding a weights file to a graph's parameters. Each names the weights file, the
/// tensor, and the place in the graph that declares it.
public enum BindingError: Error, Equatable, CustomStringConvertible {
  /// The graph declares a parameter the file does not hold.
  case missing(String, file: String, declaredAt: SourceLocation?)
  /// The file's tensor has another shape than the declaration.
  case shape(String, file: String, found: [Int], declared: TensorType, declaredAt: SourceLocation?)
  /// Reading the tensor failed (unsupported dtype, …).
  case input(InputError)

  public var description: String {
    switch self {
    case .missing(let name, let file, let at):
      "\(MessageText.path(file)): error: no tensor '\(MessageText.clean(name))', which \(Self.place(at)) declares"
    case .shape(let name, let file, let found, let declared, let at):
      "\(MessageText.path(file)): error: tensor '\(MessageText.clean(name))' has shape \(formatShape(found)), but \(Self.place(at)) declares \(declared)"
    case .input(let error):
      error.description
    }
  }

  private static func place(_ location: SourceLocation?) -> String {
    location.map { "the graph at \($0)" } ?? "the graph"
  }
}

/// Binds graph parameters to the tensors of a safetensors file by name (timm's names), checking
/// every shape against the graph's declaration. Extra tensors in the file are ignored (a
/// checkpoint may carry more than one graph uses).
public enum WeightBinding {
  /// A NaN or infinite value in a bound tensor is an error unless `allowNonFinite`.
  public static func bind(
    _ graph: Graph, to file: SafetensorsFile, allowNonFinite: Bool = false
  ) throws(BindingError) -> [String: Tensor] {
    var weights: [String: Tensor] = [:]
    for parameter in graph.parameters {
      let value = graph[parameter]
      guard let entry = file.entries[value.name] else {
        throw .missing(value.name, file: file.path, declaredAt: value.location)
      }
      guard entry.shape == value.type.fixedShape else {
        throw .shape(
          value.name, file: file.path, found: entry.shape, declared: value.type,
          declaredAt: value.location)
      }
      do {
        weights[value.name] = try file.tensor(value.name, allowNonFinite: allowNonFinite)
      } catch {
        throw .input(error)
      }
    }
    return weights
  }
}
