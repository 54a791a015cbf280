/*
 * natmod_entry.c - the native module's entry point, alone in its file and first in the link: on armv6m
 * mpy_ld jumps to mpy_init with a thumb branch that reaches only the first 4 KB of .text.
 */
#include "py/dynruntime.h"

void mpyml_store_globals(void); /* mpyml_natmod.c */

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    mpyml_store_globals();
    MP_DYNRUNTIME_INIT_EXIT
}
