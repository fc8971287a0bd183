print("lockscope")
