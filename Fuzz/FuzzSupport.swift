// Shared by the Swift fuzz harnesses (Fuzz/*.swift, built by tools/fuzz.sh outside SwiftPM
// into one module with Sources/VitFrontend). A reader may refuse an input, but its message must
// be one bounded line: a newline or a runaway length is a finding, like a crash.
func checkMessage(_ error: any Error & CustomStringConvertible) {
  let text = error.description
  precondition(!text.contains("\n") && !text.contains("\r"), "a message spans lines: \(text.prefix(300))")
  precondition(text.unicodeScalars.count < 4000, "a message of \(text.unicodeScalars.count) characters")
  precondition(text.contains("error: "), "a message without 'error: ': \(text.prefix(300))")
}
