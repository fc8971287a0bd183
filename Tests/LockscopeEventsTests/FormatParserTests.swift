import LockscopeCore
@testable import LockscopeEvents
import Testing

@Suite struct FormatParserTests {
    @Test func parsesTodaysFileLockCoreLayout() throws {
        let f = try fixtureFormats("linux-6.18")[TracepointName("filelock", "flock_lock_inode")]!
        #expect(f.name == "flock_lock_inode")
        #expect(f.id == 1125)
        #expect(f.fields.map(\.name) == ["common_type", "common_flags", "common_preempt_count", "common_pid",
                                         "fl", "i_ino", "s_dev", "blocker", "owner", "pid", "flags", "type",
                                         "fl_start", "fl_end", "ret"])
        #expect(f.field("i_ino") == TracepointField(name: "i_ino", type: "unsigned long", offset: 16, size: 8, isSigned: false))
        #expect(f.field("blocker")?.type == "struct file_lock_core *")
        #expect(f.field("ret") == TracepointField(name: "ret", type: "int", offset: 80, size: 4, isSigned: true))
        #expect(f.field("fl_start")?.isSigned == true)
    }

    @Test func parsesThePre69Layout() throws {
        let f = try fixtureFormats("linux-6.8")[TracepointName("filelock", "flock_lock_inode")]!
        #expect(f.field("pid") == nil)
        #expect(f.field("fl_pid")?.offset == 48)
        #expect(f.field(anyOf: ["pid", "fl_pid"])?.name == "fl_pid")
        #expect(f.field("fl_blocker")?.type == "struct file_lock *")
    }

    @Test func stringFieldsInlineAndDataLoc() throws {
        let new = try fixtureFormats("linux-6.18")[TracepointName("sched", "sched_process_fork")]!
        let old = try fixtureFormats("linux-6.8")[TracepointName("sched", "sched_process_fork")]!
        #expect(new.field("parent_comm")?.isDataLocation == true)
        #expect(new.field("parent_comm")?.type == "__data_loc char[]")
        #expect(old.field("parent_comm") == TracepointField(name: "parent_comm", type: "char[16]", offset: 8, size: 16, isSigned: false))
        #expect(old.field("child_pid")?.offset == 44)
        let exit = try fixtureFormats("linux-6.8")[TracepointName("sched", "sched_process_exit")]!
        #expect(exit.field("group_dead") == nil)
    }

    @Test func rejectsMalformedText() {
        #expect(throws: EventsError.self) { try TracepointFormat.parse("name: x\nformat:\n") }
        #expect(throws: EventsError.self) {
            try TracepointFormat.parse("name: x\nID: 3\nformat:\n\tfield:int;\toffset:0;\tsize:4;\tsigned:1;\n")
        }
        #expect(throws: EventsError.self) {
            try TracepointFormat.parse("name: x\nID: 3\nformat:\n\tfield:int a;\toffset:zero;\tsize:4;\n")
        }
        // `signed:` is absent on very old kernels: accepted as unsigned.
        #expect((try? TracepointFormat.parse("name: x\nID: 3\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\n"))?.fields.first?.isSigned == false)
    }

    @Test func findsMountedTracefsInMountinfo() {
        let tracefs = """
        22 27 0:20 / /sys rw,nosuid - sysfs sysfs rw
        40 22 0:12 / /sys/kernel/debug rw,relatime shared:15 - debugfs debugfs rw
        41 22 0:13 / /sys/kernel/trac\\040ing rw,relatime shared:16 - tracefs tracefs rw
        """
        #expect(TracefsSource.discover(mountinfo: tracefs) == "/sys/kernel/trac ing")
        let debugOnly = "40 22 0:12 / /sys/kernel/debug rw,relatime shared:15 - debugfs debugfs rw\n"
        #expect(TracefsSource.discover(mountinfo: debugOnly) == "/sys/kernel/debug/tracing")
        #expect(TracefsSource.discover(mountinfo: "22 27 0:20 / /sys rw,nosuid - sysfs sysfs rw\n") == nil)
    }

    @Test func cpuList() {
        #expect(PerfSession.parseCPUList("0-1\n") == [0, 1])
        #expect(PerfSession.parseCPUList("0,2-4,7") == [0, 2, 3, 4, 7])
        #expect(PerfSession.parseCPUList("") == [])
    }

    @Test func kernelFilterUsesTheInternalDevT() {
        #expect(LockEventSource.filter(for: []) == nil)
        #expect(LockEventSource.filter(for: [FileIdentity(major: 0xfe, minor: 1, inode: 42)])
                == "(i_ino == 42 && s_dev == \(0xfe << 20 | 1))")
    }
}
