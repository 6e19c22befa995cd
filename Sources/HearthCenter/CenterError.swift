import Foundation

/// What can stop the Center from starting or serving, each saying what to do about it. Errors a
/// client caused are `APIError`s and become 4xx answers.
public enum CenterError: Error, CustomStringConvertible, Sendable {
    /// A flag or file the admin gave is wrong.
    case invalid(String)
    /// The database could not be opened, migrated or used.
    case storage(String)
    /// Keys or certificates could not be made, read or used.
    case tls(String)
    /// A file or folder could not be read or written.
    case io(String)

    public var description: String {
        switch self {
        case let .invalid(message), let .storage(message), let .tls(message), let .io(message):
            return message
        }
    }
}
