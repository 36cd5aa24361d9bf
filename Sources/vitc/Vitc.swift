import ArgumentParser
import VitDriver

@main
struct Vitc: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vitc",
    abstract: "An ahead-of-time compiler for vision transformers with token pruning.",
    discussion: """
      vitc reads a model graph (.graph, docs/graph-format.md) and its weights (safetensors with \
      timm's tensor names, or --random-weights SEED), compiles it to C and to a standalone \
      binary (given no weights, compile and build make a binary that loads the user's \
      safetensors when it runs, --weights FILE), runs it with the reference interpreter, counts its multiply-adds, and prints its \
      IR at every stage. --prune SPEC applies a token-pruning method (DynamicViT, EViT, AS-ViT, \
      BAT, ToMe; docs/methods.md) as compiler passes.

      Examples:
        vitc build samples/fashion.graph --weights samples/fashion/weights.safetensors --prune dyvit:0.7 -o out/fashion-dyvit
        vitc eval samples/fashion.graph --weights samples/fashion/weights.safetensors --prune evit:0.7 --data samples/fashion
        vitc build samples/deit-s.graph --random-weights 1 -o out/deit-s
        vitc build samples/fashion.graph --prune dyvit:0.7 -o out/fashion && out/fashion --weights samples/fashion/weights.safetensors samples/fashion/ankle-boot.ppm
        vitc run samples/deit-s.graph --random-weights 1 --image samples/images/chelsea.ppm
        vitc flops samples/deit-s.graph --prune dyvit:0.7
        vitc build samples/deit-s.graph --random-weights 1 --prune evit:0.7 -o out/deit-s-evit
        vitc calibrate samples/tiny.graph --random-weights 1 --budget 0.65 --images samples/images
        vitc dump --stage parsed samples/tiny.graph

      Errors are printed as FILE:LINE:COL: error: … and exit with status 1; no output file is \
      left behind, and no output ever replaces an input or a directory. A mistake in the \
      command line itself prints the usage and exits with status 64.
      """,
    version: vitcVersion,
    subcommands: [Run.self, Compile.self, Build.self, Flops.self, Dump.self, Calibrate.self, Eval.self, GraphCommand.self, SaveWeights.self])
}
