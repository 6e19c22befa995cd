import Testing

/// Every suite that boots VMs runs inside this one, one test at a time: two cores emulating
/// several guests at once under TCG only make each boot slower and its deadline tighter.
@Suite(.serialized) enum VMSuites {}
