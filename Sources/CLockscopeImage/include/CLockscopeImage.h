// CLockscopeImage: where the static release binary's deferred protocol-conformance
// records are (docs/performance.md, "Start-up, fourth pass"). Swift cannot name the
// section bounds the linker defines; registering them with the runtime is Swift's
// (registerDeferredConformances in Sources/lockscope/Lockscope.swift).
#ifndef CLOCKSCOPE_IMAGE_H
#define CLOCKSCOPE_IMAGE_H

#ifdef __cplusplus
extern "C" {
#endif

// The records deferred-conformances.ld moved out of swift5_protocol_conformances:
// [start, stop), both null in builds linked without the script.
const void *cls_deferred_conformances_start(void);
const void *cls_deferred_conformances_stop(void);
// This image's ELF header, the base address swiftrt.o registers the image with.
const void *cls_image_base(void);

#ifdef __cplusplus
}
#endif

#endif
