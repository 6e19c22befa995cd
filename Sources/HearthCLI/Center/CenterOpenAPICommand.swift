import ArgumentParser
import HearthCenter

struct CenterOpenAPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openapi",
        abstract: "Print the Center's API as an OpenAPI 3.1 document (also served at /openapi.yaml)."
    )

    func run() {
        print(OpenAPIDocument.text)
    }
}
