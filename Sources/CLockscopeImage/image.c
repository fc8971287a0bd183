#include "CLockscopeImage.h"

#include <stddef.h>

// Bounds of the output section deferred-conformances.ld creates. The linker defines
// __start_/__stop_ for a section whose name is a C identifier; weak, so that builds
// linked without the script (debug, tests) resolve them to null (through the GOT, so
// that a position-independent build does not turn null into its load address).
extern const char __start_swift5_deferred_conformances[] __attribute__((weak));
extern const char __stop_swift5_deferred_conformances[] __attribute__((weak));
// The ELF header of this image: what the toolchain's swiftrt.o passes as base address.
extern const char __ehdr_start[] __attribute__((weak));

const void *cls_deferred_conformances_start(void) { return __start_swift5_deferred_conformances; }
const void *cls_deferred_conformances_stop(void) { return __stop_swift5_deferred_conformances; }
const void *cls_image_base(void) { return __ehdr_start; }
