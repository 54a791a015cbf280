/*
 * mpconfigport.h - MicroPython configuration of the mpyml QEMU Cortex-M port.
 *
 * A minimal port of our own (no extmod/, no lib/): the compiler, floats, a REPL and a raw REPL on the UART,
 * loading of native .mpy files (natmods, viper code) for the CPU's real architecture, a RAM filesystem and
 * the small modules mpremote and `mpyml deploy` use (os, time, binascii, hashlib: ramfs.c, modport.c).
 * The native architecture follows the compiler flags (py/persistentcode.h): -mcpu=cortex-m0 -> armv6m,
 * M3 -> armv7em (MicroPython 1.23 reports no armv7m for Thumb-2; it still loads armv7m .mpy files),
 * M4 hard-float -> armv7emsp, M7 double-precision FPU -> armv7emdp.
 */
#include <stdint.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

// native code: the Thumb emitters (viper and @native compiled on the board) and .mpy native code loading
#define MICROPY_EMIT_THUMB (1)
#define MICROPY_EMIT_INLINE_THUMB (1)
#if defined(__ARM_ARCH_6M__)
#define MICROPY_EMIT_THUMB_ARMV7M (0)
#define MICROPY_EMIT_INLINE_THUMB_FLOAT (0)
#elif !defined(__ARM_FP)
#define MICROPY_EMIT_INLINE_THUMB_FLOAT (0)
#endif
#define MICROPY_PERSISTENT_CODE_LOAD (1)
#define MICROPY_ENABLE_COMPILER (1)

// floats: single precision, double on the M7 (as the natmod kit's armv7emdp build)
#if defined(__ARM_FP) && (__ARM_FP & 8)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_DOUBLE)
#else
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#endif
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)

#define MICROPY_ENABLE_GC (1)
#define MICROPY_HELPER_REPL (1)
#define MICROPY_REPL_AUTO_INDENT (1)
#define MICROPY_KBD_EXCEPTION (1)
#define MICROPY_ENABLE_EXTERNAL_IMPORT (1)
#define MICROPY_READER_VFS (0)
#define MICROPY_READER_POSIX (0)
#define MICROPY_VFS (0)
#define MICROPY_PY_BUILTINS_HELP (1)
#define MICROPY_PY_BUILTINS_HELP_MODULES (1)
#define MICROPY_PY_SYS_STDFILES (1)
#define MICROPY_PY_SYS_STDIO_BUFFER (1)
#define MICROPY_PY_SYS_PLATFORM "qemu"
#define MICROPY_PY_MICROPYTHON_MEM_INFO (1)
#define MICROPY_PY_SYS_ARGV (1)
#define MICROPY_STACK_CHECK (1)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)
#define MICROPY_EMERGENCY_EXCEPTION_BUF_SIZE (256)
#define MICROPY_USE_INTERNAL_ERRNO (1)
#define MICROPY_USE_INTERNAL_PRINTF (1)
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_NORMAL)
#define MICROPY_WARNINGS (1)

// the modules written for this port (modport.c, ramfs.c) instead of extmod's (not in the kit)
#define MICROPY_PY_OS (0)
#define MICROPY_PY_TIME (0)
#define MICROPY_PY_BINASCII (0)
#define MICROPY_PY_HASHLIB (0)
#define MICROPY_PY_JSON (0)
#define MICROPY_PY_RE (0)
#define MICROPY_PY_HEAPQ (0)
#define MICROPY_PY_RANDOM (0)
#define MICROPY_PY_SELECT (0)
#define MICROPY_PY_PLATFORM (0)
#define MICROPY_PY_DEFLATE (0)
#define MICROPY_PY_FRAMEBUF (0)
#define MICROPY_PY_MACHINE (0)
#define MICROPY_PY_ASYNCIO (0)
#define MICROPY_PY_CRYPTOLIB (0)
#define MICROPY_PY_WEBSOCKET (0)
#define MICROPY_PY_OS_DUPTERM (0)
#define MICROPY_PY_IO_IOBASE (0)
#define MICROPY_PY_UCTYPES (0)
#define MICROPY_PY_ZLIB (0)

#define MICROPY_HW_BOARD_NAME "QEMU " MPPORT_BOARD
#define MICROPY_HW_MCU_NAME MPPORT_MCU
#define MICROPY_BANNER_MACHINE MICROPY_HW_BOARD_NAME " with " MICROPY_HW_MCU_NAME

#define MICROPY_MAKE_POINTER_CALLABLE(p) ((void *)((mp_uint_t)(p) | 1))
#define MP_SSIZE_MAX (0x7fffffff)
typedef int32_t mp_int_t;
typedef uint32_t mp_uint_t;
typedef long mp_off_t;

#define MICROPY_HEAP_SIZE_DEFAULT (128 * 1024)
#define MP_STATE_PORT MP_STATE_VM

#define MICROPY_EVENT_POLL_HOOK

#include <alloca.h>

// ramfs.c provides mp_reader_new_file, mp_lexer_new_from_file, mp_import_stat and open()
#define MICROPY_HAS_FILE_READER (1)

// Ctrl-C while Python code runs: the UART has no interrupt wired here, the VM polls it (main.c)
extern void mpport_poll_input(void);
extern int mpport_poll_count;
#define MICROPY_VM_HOOK_LOOP if (--mpport_poll_count <= 0) { mpport_poll_input(); }
