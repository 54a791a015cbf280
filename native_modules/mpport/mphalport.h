/* mphalport.h - HAL of the mpyml QEMU Cortex-M port (main.c). */
#include "shared/runtime/interrupt_char.h"

static inline mp_uint_t mp_hal_ticks_cpu(void) {
    return 0;
}
uint64_t mpport_ticks_us64(void);
#define mp_hal_ticks_us() ((mp_uint_t)mpport_ticks_us64())
#define mp_hal_ticks_ms() ((mp_uint_t)(mpport_ticks_us64() / 1000))

/* no GPIO on this port: a pin type of its own keeps py/mphal.h away from extmod/virtpin.h */
#define mp_hal_pin_obj_t int
