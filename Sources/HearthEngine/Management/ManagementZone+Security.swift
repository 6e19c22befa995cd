import Crypto
import Foundation
import HearthCore
import TPMPolicy

extension ManagementZone {
    /// The security zone's side of a check-in: the Center's policy key is trusted the first
    /// time it comes (a work key is sealed to it, and the Engine checks in again at once with
    /// what to approve); a policy the Center signed is installed, and work desktops may start.
    func adoptSecurity(_ answer: CheckInResponse) {
        let zone = engine.security
        guard zone.encryptsDisks else { return }
        if let encoded = answer.policyKey, let raw = Data(base64Encoded: encoded),
           let key = try? P256.Signing.PublicKey(rawRepresentation: raw) {
            let offered = PolicyAuthority(publicKey: key)
            if let trusted = zone.authority, trusted != offered {
                logger.error("the Center offers another policy key than the one this Engine trusts; it is not taken")
            } else if zone.authority == nil || zone.measurementReport() == nil {
                // First contact, or the work key was erased by a wipe: a new one is sealed.
                do {
                    _ = try zone.trust(authority: offered)
                    logger.notice("the Center's policy key is trusted; its approval of this Engine's measurements is asked")
                    checkInSoon()
                } catch {
                    logger.error("the Center's policy key could not be installed", metadata: ["error": "\(error)"])
                }
            }
        }
        if let verdict = answer.measurementVerdict, zone.standing != .secure {
            logger.notice("the Center's verdict on this Engine's measurements", metadata: ["verdict": "\(verdict)"])
        }
        // A policy for the key this Engine holds (not one erased by a wipe in this very check-in).
        if let policy = answer.securityPolicy, zone.standing != .secure, policy.policyRef == zone.measurementReport()?.policyRef {
            do {
                try zone.install(policy)
                autostarted.removeAll()
            } catch {
                logger.error("the Center's policy did not unseal the work key", metadata: ["error": "\(error)"])
            }
        }
    }
}
