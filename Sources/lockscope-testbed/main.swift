// lockscope-testbed: the testbed as its own executable, for the tests (LockscopeTestSupport.Testbed).
// The code lives in the LockscopeTestbed library, which `lockscope __testbed` runs too.
import LockscopeTestbed

testbedMain(Array(CommandLine.arguments.dropFirst()))
