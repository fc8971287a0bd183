// CLockscopeImage: the static release binary's deferred protocol-conformance records
// (docs/performance.md, "Start-up, fourth pass"). Swift cannot name the
// section bounds the linker defines, nor hand a section to the Swift runtime.
#ifndef CLOCKSCOPE_IMAGE_H
#define CLOCKSCOPE_IMAGE_H

#ifdef __cplusplus
extern "C" {
#endif

// Hands the records that deferred-conformances.ld moved out of
// swift5_protocol_conformances to the Swift runtime, once; later calls do nothing.
// Returns how many records it registered (0 in builds linked without the script,
// where nothing was moved). Call it from the main thread before running any code
// that may need one of those records: anything but the snapshot commands.
long cls_register_deferred_conformances(void);

#ifdef __cplusplus
}
#endif

#endif
