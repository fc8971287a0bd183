// The smallest Swift program: its peak RSS is the floor any Swift command line
// pays before doing any work (runtime + stdlib), shown next to fuser's in the
// report. Built three ways: shared stdlib, -static-stdlib, -static-executable.
print("hello")
