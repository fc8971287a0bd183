// The testbed (`lockscope-testbed`, and `lockscope __testbed` in the one release
// binary, which the demo re-executes): takes real locks and blocks in real system calls, driven by
// argv, so live tests and benchmarks can build exactly the situation they assert
// on. Modelled on util-linux's test_mkfds: print the pid, do the steps, say
// "ready", hold until stdin says go. The protocol is documented in `usage`
// below and in docs/testbed.md; LockscopeTestSupport.Testbed drives it.
//
// Output goes through write(2) on fd 1, never stdio: after fork() a buffered
// FILE would print twice, and every line must reach the reader at once.
// Each line is shorter than PIPE_BUF, so lines from forked processes sharing
// the pipe never interleave.

import Glibc

let usage = """
usage: lockscope-testbed [--max-seconds N] STEP...

Takes real locks and blocks in real system calls, step by step, for tests.

Protocol (one line per event on stdout, flushed at once):
  pid <PID>                   at start
  ok <STEP> <PID>             after each step (control characters in STEP escaped as \\n, \\xHH)
  child <CHILD> <PARENT>      printed by the child of `fork`
  daemon <CHILD>              printed by the parent of `daemonize` just before it exits 0
  thread <TID> <PID>          printed by `thread:STEP` once the new thread runs
  ready <PID>                 after the last step; then the process holds everything
                              until a line or EOF arrives on stdin, and exits 0
  fail <WHAT> <ERRNO> [<PID>] a step failed at run time: exit 3
Invalid arguments: one line on stderr, exit 2. Nothing runs before all steps parse.
--max-seconds N (default 300): the process (and every forked child) dies by SIGALRM
after N seconds from start, so nothing outlives a crashed test.

Steps (parameters separated by ':'; for open: and open-ro: all text after the first
':' is the path, which may itself contain ':' or any byte):
  open:PATH            open O_RDWR|O_CREAT 0644 (no O_CLOEXEC); becomes the current fd
  open-ro:PATH         open O_RDONLY|O_CREAT 0644; becomes the current fd
  dup                  dup the current fd; the copy becomes current
  cloexec              set FD_CLOEXEC on the current fd
  close                close the current fd (the previous one becomes current)
  flock:ex|sh[:nb]     flock(2) on the current fd; blocking unless :nb
                       (:nb failure: `fail flock EWOULDBLOCK`, exit 3)
  flock:un             flock(LOCK_UN)
  posix:w|r:START:LEN  fcntl F_SETLKW (blocking); LEN 0 = to EOF
  posix-nb:w|r:START:LEN  fcntl F_SETLK (fail: exit 3)
  ofd:w|r:START:LEN    fcntl F_OFD_SETLKW (blocking); LEN 0 = to EOF
  ofd-nb:w|r:START:LEN fcntl F_OFD_SETLK (fail: exit 3)
  lease:r|w            fcntl F_SETLEASE (fail: exit 3)
  poll-lock:MS         loop flock(LOCK_EX|LOCK_NB); on EWOULDBLOCK nanosleep MS ms and
                       retry until acquired (the shape of `iptables -w`)
  fork                 fork; the child prints `child`, runs the remaining steps, prints
                       `ready` and holds. The parent skips the remaining steps up to an
                       optional `parent` word, runs the steps after it, prints `ready`
                       and holds (it keeps its fds: a flock stays shared with the child)
  parent               separator used only after `fork` (see above)
  daemonize            fork; the parent prints `daemon <CHILD>` and exits 0 at once;
                       the child calls setsid() and runs the remaining steps
  wait-child           wait4() for the child of the last `fork`
  sleep:MS             nanosleep MS milliseconds
  spin:MS              burn CPU for MS milliseconds
  blackhole:HOST:PORT  bind a UDP socket on a loopback HOST:PORT that never answers
                       (PORT 0 = any); prints `blackhole <PORT> <PID>`
  udp-poll:HOST:PORT:TIMEOUT_MS[:REPEAT]
                       UDP socket connected to a loopback HOST:PORT, send one datagram,
                       then poll([fd, POLLIN], 1, TIMEOUT_MS) REPEAT times (default 1);
                       a port-unreachable error is consumed and the same poll repeated,
                       so the thread stays in poll() for the whole timeout
  resolve:NAME         getaddrinfo(NAME) with the process's /etc/resolv.conf; prints
                       `resolved NAME ADDR <PID>` or `resolve-error NAME MESSAGE <PID>`
  thread:STEP          run STEP in a new thread and continue at once
  syscalls:N[:PAUSE_MS] tracer-overhead workload: print `sync <PID>`, then wait for a
                       line on stdin (or PAUSE_MS ms if given), then do N one-byte
                       write+read pairs on a pipe and print `loop-ns <NS>`
  await                print `await <PID>`, then block in read(2) on stdin until a line
                       arrives (a tracer attaches first; the steps after it are then
                       all seen)
  exit                 exit 0 at once

Examples:
  lockscope-testbed open:/tmp/f flock:ex                  # hold an exclusive flock
  lockscope-testbed open:/tmp/f flock:ex                  # (a second one blocks in flock)
  lockscope-testbed open:/tmp/f flock:ex fork sleep:60000 # child shares the lock
  lockscope-testbed open:/tmp/f flock:ex thread:udp-poll:127.0.0.1:9:5000
"""

// MARK: - Output

/// Escapes control characters and backslash so a step or path never breaks a line.
func escape(_ s: String) -> String {
    var out = ""
    for sc in s.unicodeScalars {
        switch sc.value {
        case 0x5c: out += "\\\\"
        case 0x0a: out += "\\n"
        case 0x09: out += "\\t"
        case 0..<0x20, 0x7f, 0x80..<0xa0:
            let hex = String(sc.value, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        default: out.unicodeScalars.append(sc)
        }
    }
    return out
}

/// Writes one line to stdout with a single write(2).
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { buf in
            write(1, buf.baseAddress! + off, buf.count - off)
        }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        off += n
    }
    bytes.removeAll()
}

func usageError(_ message: String) -> Never {
    let line = "lockscope-testbed: \(message) (see --help)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

func errnoName(_ e: Int32) -> String {
    switch e {
    case EWOULDBLOCK: return "EWOULDBLOCK"
    case EACCES: return "EACCES"
    case ENOENT: return "ENOENT"
    case EINTR: return "EINTR"
    case EDEADLK: return "EDEADLK"
    case EBADF: return "EBADF"
    case EINVAL: return "EINVAL"
    case EPERM: return "EPERM"
    case ENOLCK: return "ENOLCK"
    case EISDIR: return "EISDIR"
    case ECHILD: return "ECHILD"
    case ECONNREFUSED: return "ECONNREFUSED"
    case ENETUNREACH: return "ENETUNREACH"
    case EADDRINUSE: return "EADDRINUSE"
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL"
    case EMFILE: return "EMFILE"
    default: return "errno\(e)"
    }
}

/// A step failed at run time: `fail WHAT ERRNO PID`, exit 3.
func fail(_ what: String, _ e: Int32 = errno) -> Never {
    say("fail \(what) \(errnoName(e)) \(getpid())")
    exit(3)
}

// MARK: - Steps

enum Access { case read, write }

indirect enum Step {
    case open(path: String, readOnly: Bool)
    case dup, cloexec, close
    case flock(op: Int32, nonBlocking: Bool)
    case posix(Access, start: Int64, len: Int64, wait: Bool)
    case ofd(Access, start: Int64, len: Int64, wait: Bool)
    case lease(Access)
    case pollLock(ms: Int)
    case fork, parentSeparator, daemonize, waitChild
    case sleep(ms: Int)
    case spin(ms: Int)
    case blackhole(host: String, port: UInt16)
    case udpPoll(host: String, port: UInt16, timeoutMs: Int32, repeatCount: Int)
    case resolve(name: String)
    case thread(Step, text: String)
    case syscalls(count: Int, pauseMs: Int?)
    case await_
    case exit
}

func parseInt<T: FixedWidthInteger>(_ s: Substring, _ what: String, in word: String, min: T = 0) -> T {
    guard let v = T(s), v >= min else { usageError("bad \(what) '\(s)' in step '\(escape(word))'") }
    return v
}

func parseAccess(_ s: Substring, in word: String) -> Access {
    switch s {
    case "w": return .write
    case "r": return .read
    default: usageError("access must be r or w in step '\(escape(word))'")
    }
}

/// Accepts only loopback addresses: the testbed never talks to the network.
func checkLoopback(_ host: Substring, in word: String) -> String {
    let h = String(host)
    var a4 = in_addr()
    var a6 = in6_addr()
    if inet_pton(AF_INET, h, &a4) == 1 {
        if (UInt32(bigEndian: a4.s_addr) >> 24) != 127 { usageError("host \(h) is not loopback in step '\(escape(word))'") }
        return h
    }
    if inet_pton(AF_INET6, h, &a6) == 1 {
        if h != "::1" { usageError("host \(h) is not loopback in step '\(escape(word))'") }
        return h
    }
    usageError("host must be a numeric loopback address in step '\(escape(word))'")
}

func parseStep(_ word: String) -> Step {
    if word.hasPrefix("open:") { return .open(path: String(word.dropFirst(5)), readOnly: false) }
    if word.hasPrefix("open-ro:") { return .open(path: String(word.dropFirst(8)), readOnly: true) }
    if word.hasPrefix("thread:") {
        let inner = String(word.dropFirst(7))
        let step = parseStep(inner)
        switch step {
        case .fork, .daemonize, .parentSeparator, .thread, .exit, .waitChild, .await_:
            usageError("step '\(escape(inner))' cannot run in a thread")
        default: return .thread(step, text: inner)
        }
    }
    let p = word.split(separator: ":", omittingEmptySubsequences: false)
    let args = Array(p.dropFirst())
    func need(_ n: ClosedRange<Int>) {
        if !n.contains(args.count) { usageError("wrong number of parameters in step '\(escape(word))'") }
    }
    switch p[0] {
    case "dup": need(0...0); return .dup
    case "cloexec": need(0...0); return .cloexec
    case "close": need(0...0); return .close
    case "fork": need(0...0); return .fork
    case "parent": need(0...0); return .parentSeparator
    case "daemonize": need(0...0); return .daemonize
    case "wait-child": need(0...0); return .waitChild
    case "exit": need(0...0); return .exit
    case "await": need(0...0); return .await_
    case "flock":
        need(1...2)
        var nb = false
        if args.count == 2 {
            guard args[1] == "nb" else { usageError("expected flock:ex|sh[:nb] in '\(escape(word))'") }
            nb = true
        }
        switch args[0] {
        case "ex": return .flock(op: LOCK_EX, nonBlocking: nb)
        case "sh": return .flock(op: LOCK_SH, nonBlocking: nb)
        case "un" where !nb: return .flock(op: LOCK_UN, nonBlocking: false)
        default: usageError("expected flock:ex|sh|un in '\(escape(word))'")
        }
    case "posix", "posix-nb", "ofd", "ofd-nb":
        need(3...3)
        let a = parseAccess(args[0], in: word)
        let start: Int64 = parseInt(args[1], "START", in: word)
        let len: Int64 = parseInt(args[2], "LEN", in: word)
        let wait = !p[0].hasSuffix("-nb")
        return p[0].hasPrefix("posix") ? .posix(a, start: start, len: len, wait: wait)
                                       : .ofd(a, start: start, len: len, wait: wait)
    case "lease":
        need(1...1)
        return .lease(parseAccess(args[0], in: word))
    case "poll-lock":
        need(1...1)
        return .pollLock(ms: parseInt(args[0], "MS", in: word, min: 1))
    case "sleep":
        need(1...1)
        return .sleep(ms: parseInt(args[0], "MS", in: word))
    case "spin":
        need(1...1)
        return .spin(ms: parseInt(args[0], "MS", in: word))
    case "blackhole":
        need(2...2)
        return .blackhole(host: checkLoopback(args[0], in: word), port: parseInt(args[1], "PORT", in: word))
    case "udp-poll":
        need(3...4)
        let host = checkLoopback(args[0], in: word)
        let port: UInt16 = parseInt(args[1], "PORT", in: word, min: 1)
        let timeout: Int32 = parseInt(args[2], "TIMEOUT_MS", in: word, min: -1)
        let rep: Int = args.count == 4 ? parseInt(args[3], "REPEAT", in: word, min: 1) : 1
        return .udpPoll(host: host, port: port, timeoutMs: timeout, repeatCount: rep)
    case "resolve":
        guard word.count > 8 else { usageError("expected resolve:NAME") }
        return .resolve(name: String(word.dropFirst(8)))
    case "syscalls":
        need(1...2)
        let n: Int = parseInt(args[0], "N", in: word, min: 1)
        let pause: Int? = args.count == 2 ? parseInt(args[1], "PAUSE_MS", in: word) : nil
        return .syscalls(count: n, pauseMs: pause)
    default:
        usageError("unknown step '\(escape(word))'")
    }
}

// MARK: - State

/// Open fds in order; the last is "current". Shared by all threads (thread
/// steps read it once when they start).
var fds: [Int32] = []
var lastChild: pid_t = -1
var deadline: Int = 0  // CLOCK_MONOTONIC seconds

func currentFd(_ what: String) -> Int32 {
    guard let fd = fds.last else { fail(what, EBADF) }
    return fd
}

func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Arms SIGALRM (default action: terminate) for what is left of --max-seconds.
/// Called at start and again in every forked child, which does not inherit alarms.
func armSafetyNet() {
    let now = Int(monotonicNs() / 1_000_000_000)
    alarm(UInt32(max(1, deadline - now)))
}

func sleepMs(_ ms: Int) {
    var req = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var rem = timespec()
    while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
}

/// The thread id of the calling thread (gettid() is not exported to Swift).
func currentTid() -> Int32 {
    var buf = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buf, 63)
    guard n > 0 else { return getpid() }
    let s = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int32(s.split(separator: "/").last ?? "") ?? getpid()
}

func makeSockaddr(_ host: String, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t, Int32) -> Void) {
    var a4 = sockaddr_in()
    if inet_pton(AF_INET, host, &a4.sin_addr) == 1 {
        a4.sin_family = sa_family_t(AF_INET)
        a4.sin_port = port.bigEndian
        withUnsafePointer(to: &a4) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size), AF_INET) }
        }
        return
    }
    var a6 = sockaddr_in6()
    _ = inet_pton(AF_INET6, host, &a6.sin6_addr)
    a6.sin6_family = sa_family_t(AF_INET6)
    a6.sin6_port = port.bigEndian
    withUnsafePointer(to: &a6) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size), AF_INET6) }
    }
}

/// Reads stdin until a newline or EOF (or an error other than EINTR).
func waitForLine() {
    var c: UInt8 = 0
    while true {
        let n = read(0, &c, 1)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 || c == UInt8(ascii: "\n") { return }
    }
}

/// flock(2): in Swift the name `flock` means the struct; bind the function explicitly.
let flockCall: @convention(c) (Int32, Int32) -> Int32 = flock

// Hidden behind _GNU_SOURCE in Swift's Glibc; include/uapi/asm-generic/fcntl.h.
let F_OFD_SETLK_: Int32 = 37
let F_OFD_SETLKW_: Int32 = 38
let F_SETLEASE_: Int32 = 1024

func fcntlLock(_ cmd: Int32, _ access: Access, _ start: Int64, _ len: Int64, _ what: String) {
    let fd = currentFd(what)
    var fl = Glibc.flock()
    fl.l_type = Int16(access == .write ? F_WRLCK : F_RDLCK)
    fl.l_whence = Int16(SEEK_SET)
    fl.l_start = __off_t(start)
    fl.l_len = __off_t(len)
    fl.l_pid = 0  // must be 0 for OFD locks
    while fcntl(fd, cmd, &fl) != 0 {
        if errno == EINTR { continue }
        fail(what)
    }
}

/// Runs one step. Returns normally when the step is done.
func run(_ step: Step) {
    switch step {
    case let .open(path, readOnly):
        let fd = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CREAT, 0o644)
        if fd < 0 { fail("open") }
        fds.append(fd)
    case .dup:
        let fd = dup(currentFd("dup"))
        if fd < 0 { fail("dup") }
        fds.append(fd)
    case .cloexec:
        let fd = currentFd("cloexec")
        if fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) != 0 { fail("cloexec") }
    case .close:
        Glibc.close(currentFd("close"))
        fds.removeLast()
    case let .flock(op, nb):
        let fd = currentFd("flock")
        while flockCall(fd, op | (nb ? LOCK_NB : 0)) != 0 {
            if errno == EINTR { continue }
            fail("flock")
        }
    case let .posix(a, start, len, wait):
        fcntlLock(wait ? F_SETLKW : F_SETLK, a, start, len, "posix")
    case let .ofd(a, start, len, wait):
        fcntlLock(wait ? F_OFD_SETLKW_ : F_OFD_SETLK_, a, start, len, "ofd")
    case let .lease(a):
        if fcntl(currentFd("lease"), F_SETLEASE_, a == .write ? F_WRLCK : F_RDLCK) != 0 { fail("lease") }
    case let .pollLock(ms):
        let fd = currentFd("poll-lock")
        while flockCall(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if errno != EWOULDBLOCK { fail("poll-lock") }
            sleepMs(ms)
        }
    case .fork, .parentSeparator, .daemonize:
        break  // handled by the main loop
    case .waitChild:
        guard lastChild > 0 else { fail("wait-child", ECHILD) }
        var status: Int32 = 0
        while wait4(lastChild, &status, 0, nil) < 0 {
            if errno == EINTR { continue }
            fail("wait-child")
        }
    case let .sleep(ms):
        sleepMs(ms)
    case let .spin(ms):
        let end = monotonicNs() + UInt64(ms) * 1_000_000
        var x: UInt64 = 1
        while monotonicNs() < end {
            for i in 0..<1000 { x = x &* 6364136223846793005 &+ UInt64(i) }
        }
        if x == 42 { say("") }  // keep the loop from being optimised away
    case let .blackhole(host, port):
        var fd: Int32 = -1
        makeSockaddr(host, port) { sa, len, family in
            fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
            if fd < 0 { fail("blackhole") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(fd, sa, len) != 0 { fail("blackhole") }
        }
        var ss = sockaddr_storage()
        var sl = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var bound = port
        withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
                if getsockname(fd, sp, &sl) == 0 {
                    sp.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { bound = UInt16(bigEndian: $0.pointee.sin_port) }
                }
            }
        }
        say("blackhole \(bound) \(getpid())")
    case let .udpPoll(host, port, timeout, rep):
        var fd: Int32 = -1
        makeSockaddr(host, port) { sa, len, family in
            fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
            if fd < 0 { fail("udp-poll") }
            if connect(fd, sa, len) != 0 { fail("udp-poll") }
        }
        // 12-byte DNS header + nothing: the shape, not a valid query.
        var dgram: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        _ = send(fd, &dgram, dgram.count, 0)
        for _ in 0..<rep {
            let start = monotonicNs()
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&pfd, 1, timeout)
                if r < 0 && errno == EINTR { continue }
                if r > 0 && (pfd.revents & Int16(POLLERR)) != 0 {
                    // ICMP port unreachable: consume it and wait again, like a
                    // resolver that tries the same server until its timeout.
                    var err: Int32 = 0
                    var el = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el)
                    if timeout >= 0 && monotonicNs() - start >= UInt64(timeout) * 1_000_000 { break }
                    continue
                }
                if r > 0 && (pfd.revents & Int16(POLLIN)) != 0 {
                    var buf = [UInt8](repeating: 0, count: 512)
                    _ = recv(fd, &buf, buf.count, 0)
                }
                break
            }
        }
        Glibc.close(fd)
    case let .resolve(name):
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &res)
        if rc != 0 {
            say("resolve-error \(escape(name)) \(escape(String(cString: gai_strerror(rc))).replacingSpaces()) \(getpid())")
        } else {
            var text = "?"
            if let ai = res, let sa = ai.pointee.ai_addr {
                var host = [CChar](repeating: 0, count: 64)
                if getnameinfo(sa, ai.pointee.ai_addrlen, &host, 64, nil, 0, NI_NUMERICHOST) == 0 {
                    text = String(cString: host)
                }
            }
            freeaddrinfo(res)
            say("resolved \(escape(name)) \(text) \(getpid())")
        }
    case let .thread(inner, _):
        startThread(inner)
    case let .syscalls(n, pause):
        say("sync \(getpid())")
        if let pause { sleepMs(pause) } else { waitForLine() }
        var p: [Int32] = [0, 0]
        if pipe(&p) != 0 { fail("syscalls") }
        var b: UInt8 = 1
        let start = monotonicNs()
        for _ in 0..<n {
            _ = write(p[1], &b, 1)
            _ = read(p[0], &b, 1)
        }
        let ns = monotonicNs() - start
        Glibc.close(p[0]); Glibc.close(p[1])
        say("loop-ns \(ns)")
    case .await_:
        say("await \(getpid())")
        waitForLine()
    case .exit:
        exit(0)
    }
}

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

// MARK: - Threads

final class ThreadBox {
    let step: Step
    var tidPipe: [Int32] = [0, 0]
    init(_ step: Step) { self.step = step }
}

func startThread(_ step: Step) {
    let box = ThreadBox(step)
    if pipe(&box.tidPipe) != 0 { fail("thread") }
    let rfd = box.tidPipe[0]
    var th = pthread_t()
    let arg = Unmanaged.passRetained(box).toOpaque()
    let rc = pthread_create(&th, nil, { raw in
        let box = Unmanaged<ThreadBox>.fromOpaque(raw!).takeRetainedValue()
        var tid = currentTid()
        _ = write(box.tidPipe[1], &tid, 4)
        Glibc.close(box.tidPipe[1])
        run(box.step)
        return nil
    }, arg)
    if rc != 0 { fail("thread", rc) }
    pthread_detach(th)
    var tid: Int32 = 0
    while read(rfd, &tid, 4) < 0 && errno == EINTR {}
    Glibc.close(rfd)
    say("thread \(tid) \(getpid())")
}

// MARK: - Main

/// The parsed steps (`execute` walks them; `fork` children continue in them).
var steps: [Step] = []
/// Each step's word as given, for the `ok` lines.
var stepWords: [String] = []

/// Runs steps[start..<end]; `fork` splits the rest between child and parent.
func execute(_ start: Int, _ end: Int) {
    var k = start
    while k < end {
        let step = steps[k]
        let word = stepWords[k]
        switch step {
        case .fork:
            let parent = getpid()
            var sep = k + 1
            while sep < end { if case .parentSeparator = steps[sep] { break }; sep += 1 }
            let child = fork()
            if child < 0 { fail("fork") }
            if child == 0 {
                armSafetyNet()
                lastChild = -1
                say("child \(getpid()) \(parent)")
                execute(k + 1, sep)
                return
            }
            lastChild = child
            say("ok \(escape(word)) \(getpid())")
            execute(sep + 1, end)
            return
        case .daemonize:
            let child = fork()
            if child < 0 { fail("daemonize") }
            if child > 0 {
                say("daemon \(child)")
                exit(0)
            }
            armSafetyNet()
            setsid()
            say("ok \(escape(word)) \(getpid())")
        default:
            run(step)
            say("ok \(escape(word)) \(getpid())")
        }
        k += 1
    }
}

/// Runs the testbed on `arguments` (argv without the program name) and never returns:
/// exit 0 after `ready` and a line on stdin, 2 on bad arguments, 3 when a step fails.
public func testbedMain(_ arguments: [String]) -> Never {
    setvbuf(stdout, nil, _IONBF, 0)
    let words = arguments
    var maxSeconds = 300
    var i = 0
    while i < words.count {
        let w = words[i]
        if w == "--help" || w == "-h" {
            say(usage)
            exit(0)
        } else if w == "--max-seconds" {
            guard i + 1 < words.count, let n = Int(words[i + 1]), n > 0 else { usageError("--max-seconds needs a positive number") }
            maxSeconds = n
            i += 2
            continue
        } else if w.hasPrefix("--max-seconds=") {
            guard let n = Int(w.dropFirst(14)), n > 0 else { usageError("--max-seconds needs a positive number") }
            maxSeconds = n
        } else if w.hasPrefix("-") {
            usageError("unknown option '\(escape(w))'")
        } else {
            stepWords.append(w)
        }
        i += 1
    }
    steps = stepWords.map(parseStep)
    if let bad = steps.firstIndex(where: { if case .parentSeparator = $0 { return true } else { return false } }),
       !steps[..<bad].contains(where: { if case .fork = $0 { return true } else { return false } }) {
        usageError("'parent' is only valid after 'fork'")
    }

    deadline = Int(monotonicNs() / 1_000_000_000) + maxSeconds
    armSafetyNet()
    signal(SIGPIPE, SIG_IGN)  // a reader that went away must not kill a lock holder mid-step
    say("pid \(getpid())")

    execute(0, steps.count)
    say("ready \(getpid())")
    waitForLine()
    exit(0)
}
