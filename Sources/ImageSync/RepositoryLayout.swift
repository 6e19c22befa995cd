/// Where things sit in a repository, relative to its root. The same paths serve from a local
/// folder, any static web server or CDN, and (mapped to blobs) an OCI registry. Everything but
/// `timestamp.json` and `root.json` is immutable once written: versioned or content-addressed.
public enum RepositoryLayout {
    public static let timestamp = "metadata/timestamp.json"
    public static let currentRoot = "metadata/root.json"
    public static func root(_ version: Int) -> String { "metadata/\(version).root.json" }
    public static func snapshot(_ version: Int) -> String { "metadata/\(version).snapshot.json" }
    public static func targets(_ version: Int) -> String { "metadata/\(version).targets.json" }
    public static func index(_ digest: Digest) -> String { "indexes/\(digest.hex).index" }
    public static func pack(_ digest: Digest) -> String { "packs/\(digest.hex).pack" }

    /// Size limits for files whose length nothing else pins.
    static let maximumRootLength = 512 << 10
    static let maximumTimestampLength = 64 << 10
    static let maximumRootRotations = 1024
}
