// The smallest Swift program: its peak RSS is the floor any Swift CLI pays
// before doing any work (runtime + stdlib), shown next to fuser's in the report.
print("hello")
