import Testing
@testable import HearthEngine

@Suite struct VMLifecycleTests {
    @Test func aNormalLifeStartsBootsAndStops() {
        var vm = VMLifecycle()
        #expect(vm.handle(.startRequested) == .prepareAndLaunch)
        #expect(vm.phase == .starting)
        #expect(vm.handle(.bootConfirmed) == .none)
        #expect(vm.phase == .running)
        #expect(vm.handle(.stopRequested) == .powerDown)
        #expect(vm.phase == .stopping)
        #expect(vm.handle(.exited(status: 0)) == .none)
        #expect(vm.phase == .stopped)
    }

    @Test func startingTwiceDoesNothingTheSecondTime() {
        var vm = VMLifecycle()
        _ = vm.handle(.startRequested)
        #expect(vm.handle(.startRequested) == .none)
        _ = vm.handle(.bootConfirmed)
        #expect(vm.handle(.startRequested) == .none)
        #expect(vm.phase == .running)
    }

    @Test func aBootThatNeverFinishesFailsWithAReasonAndIsKilled() {
        var vm = VMLifecycle()
        _ = vm.handle(.startRequested)
        #expect(vm.handle(.bootTimedOut) == .kill)
        #expect(vm.phase == .failed)
        #expect(vm.lastFailure?.contains("did not finish booting") == true)
        // A failed VM may be started again, and the old reason is cleared.
        #expect(vm.handle(.startRequested) == .prepareAndLaunch)
        #expect(vm.lastFailure == nil)
    }

    @Test func aCrashIsAFailureAndAPowerOffIsAStop() {
        var crashed = VMLifecycle()
        _ = crashed.handle(.startRequested)
        _ = crashed.handle(.bootConfirmed)
        _ = crashed.handle(.exited(status: 1))
        #expect(crashed.phase == .failed)
        #expect(crashed.lastFailure == "QEMU exited with status 1")

        var poweredOff = VMLifecycle()
        _ = poweredOff.handle(.startRequested)
        _ = poweredOff.handle(.bootConfirmed)
        _ = poweredOff.handle(.exited(status: 0))
        #expect(poweredOff.phase == .stopped)
    }

    @Test func startingWhileStoppingIsRefusedAndLateEventsAreRejected() {
        var vm = VMLifecycle()
        _ = vm.handle(.startRequested)
        _ = vm.handle(.stopRequested)
        guard case .reject = vm.handle(.startRequested) else {
            Issue.record("a start during a stop must be refused")
            return
        }
        guard case .reject = vm.handle(.bootConfirmed) else {
            Issue.record("a boot confirmation while stopping must be rejected")
            return
        }
        #expect(vm.phase == .stopping)
        var stopped = VMLifecycle()
        #expect(stopped.handle(.stopRequested) == .none)
        #expect(stopped.handle(.exited(status: 0)) == .none)
        #expect(stopped.phase == .stopped)
    }
}
