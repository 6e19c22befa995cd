import Testing
@testable import GuestKit

@Suite struct GuestKitCacheTests {
    let kernel = DebianPackage(name: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2")
    let busybox = DebianPackage(name: "busybox-static", version: "1:1.35.0-4+deb12u1+b1")

    @Test func aNewKernelOrBusyboxMakesANewKit() {
        let key = GuestKit.cacheKey(kernel: kernel, busybox: busybox)
        #expect(key.count == 16)
        #expect(key == GuestKit.cacheKey(kernel: kernel, busybox: busybox))
        #expect(key != GuestKit.cacheKey(kernel: DebianPackage(name: kernel.name, version: "6.1.193-1"), busybox: busybox))
        #expect(key != GuestKit.cacheKey(kernel: kernel, busybox: DebianPackage(name: busybox.name, version: "1:1.36.1-1")))
    }

    @Test func aptControlFieldsAreRead() {
        let text = """
        Package: linux-image-cloud-amd64
        Version: 6.1.192-2
        Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
        Description: Linux for x86-64 cloud (meta-package)
         This package depends on the latest Linux kernel.
        """
        let fields = DebianPackage.parseFields(text)
        #expect(fields["Version"] == "6.1.192-2")
        #expect(fields["Depends"] == "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)")
        #expect(fields["This package depends on the latest Linux kernel."] == nil)
    }

    @Test func anEpochInAVersionIsEscapedInTheFileName() {
        #expect(busybox.fileName == "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb")
    }
}
