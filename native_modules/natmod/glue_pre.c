/*
 * glue_pre.c - MicroPython bindings of the preprocessing core (native_modules/engine/pre/).
 * mpyml_register_pre() is called from mpy_init and stores each preprocessing function in the module.
 */
#include "py/dynruntime.h"

void mpyml_register_pre(void) {
}
