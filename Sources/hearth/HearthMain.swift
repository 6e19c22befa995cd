import HearthCLI

@main
enum HearthMain {
    static func main() async {
        await Hearth.start()
    }
}
