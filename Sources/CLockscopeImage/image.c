#include "CLockscopeImage.h"

#include <stddef.h>
#include <stdint.h>

// Bounds of the output section deferred-conformances.ld creates. The linker defines
// __start_/__stop_ for a section whose name is a C identifier; weak, so that builds
// linked without the script (debug, tests) resolve them to null (through the GOT, so
// that a position-independent build does not turn null into its load address).
extern const char __start_swift5_deferred_conformances[] __attribute__((weak));
extern const char __stop_swift5_deferred_conformances[] __attribute__((weak));
// The ELF header of this image: what the toolchain's swiftrt.o passes as base address.
extern const char __ehdr_start[] __attribute__((weak));

// The runtime's image-registration entry point (stdlib/public/runtime/
// ImageInspectionCommon.cpp): swiftrt.o calls it once per image at start-up with
// every metadata section of the image; it registers the conformance records of
// `sections` for lookup (and clears the runtime's conformance cache, so no earlier
// negative answer survives) and keeps the pointer for later enumeration.
extern void swift_addNewDSOImage(const void *sections);

// The layout of `struct MetadataSections`, version 5 (swift/shims/MetadataSections.h
// of the Swift 6 toolchains; swiftrt.o stores 5 in `version`). Only the conformance
// range is filled: the image's other sections were registered at start-up.
struct cls_section_range {
    uintptr_t start;
    size_t length;
};

struct cls_metadata_sections {
    uintptr_t version;
    const void *base_address;
    void *unused0;
    void *unused1;
    struct cls_section_range protocols;
    struct cls_section_range protocol_conformances;
    struct cls_section_range type_metadata;
    struct cls_section_range typeref;
    struct cls_section_range reflstr;
    struct cls_section_range fieldmd;
    struct cls_section_range assocty;
    struct cls_section_range replace;
    struct cls_section_range replac2;
    struct cls_section_range builtin;
    struct cls_section_range capture;
    struct cls_section_range mpenum;
    struct cls_section_range accessible_functions;
    struct cls_section_range runtime_attributes;
    struct cls_section_range tests;
    // Zeros where a later runtime may read sections appended to the structure: an
    // empty range is skipped.
    struct cls_section_range appended[8];
};

// Static: the runtime keeps the pointer for as long as the process runs.
static struct cls_metadata_sections deferred;
static int registered;

long cls_register_deferred_conformances(void) {
    if (registered) return 0;
    registered = 1;
    const char *start = __start_swift5_deferred_conformances;
    const char *stop = __stop_swift5_deferred_conformances;
    if (start == NULL || stop <= start) return 0;
    deferred.version = 5;
    deferred.base_address = __ehdr_start;
    deferred.protocol_conformances.start = (uintptr_t)start;
    deferred.protocol_conformances.length = (size_t)(stop - start);
    swift_addNewDSOImage(&deferred);
    return (long)((stop - start) / 4);  // one 32-bit relative pointer per record
}
