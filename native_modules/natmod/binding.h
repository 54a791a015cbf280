/*
 * binding.h - one binding source, two build modes.
 *
 * natmod (MICROPY_ENABLE_DYNRUNTIME, from py/dynruntime.mk): a .mpy native module, no firmware rebuild.
 * firmware (USER_C_MODULES, native_modules/usermod/): the same file compiled into a MicroPython port as
 * the built-in module `mpyml_engine` (e.g. ESP32-CAM firmwares built with ESP-IDF).
 *
 * Function lists are X-macros of (MP_QSTR_name, fun_obj) pairs with the qstr spelled out literally:
 * the natmod qstr scan (mpy_ld --preprocess) reads raw source, the firmware one preprocessed source.
 */
#ifndef MPYML_BINDING_H
#define MPYML_BINDING_H

#ifdef MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#include "py/binary.h"
#endif

#endif /* MPYML_BINDING_H */
