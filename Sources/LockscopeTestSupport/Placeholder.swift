// Live-test helpers: spawning testbed processes and cleaning up after them.
