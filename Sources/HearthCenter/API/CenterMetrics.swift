import Metrics
import Prometheus

/// The process's metrics, served at `/metrics` in Prometheus' text format: Hummingbird's request
/// counters and durations (`hb_requests`, `hb_request_duration`…) and the Center's own.
enum CenterMetrics {
    /// Bootstraps swift-metrics once per process (several Centers in one test process share it).
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    static func text() -> String { registry.emitToString() }

    static let checkIns = Counter(label: "hearth_center_checkins_total")
    static let enrollments = Counter(label: "hearth_center_enrollments_total")
    static let failedLogins = Counter(label: "hearth_center_failed_logins_total")
}
