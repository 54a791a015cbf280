/*
 * startup.c - vector table, reset and fault handlers for the bare-metal harness (Cortex-M0/M3/M4/M7).
 *
 * Reset: on M3/M4/M7 move thread mode onto its own stack (PSP; exceptions keep MSP, a small stack of their
 * own: common.ld), copy .data from flash to RAM, zero .bss, paint the stack (for the high-water mark the
 * harness reports), set up the MPU (M3/M4/M7: flash read-only, no-access guard under the thread stack),
 * enable the FPU when the code is built for one (M4/M7 hard-float: the engine is integer-only, but the ABI
 * lets the compiler use FP registers), then main(). Any fault prints its registers through semihosting and
 * exits with status 99: an emulator run never hangs, and a stack overflow or a write into the model (which
 * the engine must use in place, read-only) is caught where it happens.
 */
#include <stdint.h>
#include "semihost.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_limit[], __stack_top[], __msp_top[];

int main(void);

#define STACK_PAINT 0xA5C3A5C3u
#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_SHCSR 0xE000ED24u
#define SCB_CFSR 0xE000ED28u
#define SCB_HFSR 0xE000ED2Cu
#define SCB_MMFAR 0xE000ED34u
#define SCB_BFAR 0xE000ED38u
#define SCB_CPACR 0xE000ED88u
#define MPU_TYPE 0xE000ED90u
#define MPU_CTRL 0xE000ED94u
#define MPU_RNR 0xE000ED98u
#define MPU_RBAR 0xE000ED9Cu
#define MPU_RASR 0xE000EDA0u

/*
 * ARMv7-M MPU (M3/M4/M7; the nRF51's Cortex-M0 has none). Region 0: the flash (code, the model, the inputs)
 * read-only; on the mps2 boards it is really SSRAM, so an engine write into its model would otherwise pass
 * unnoticed. Region 1: STACK_GUARD bytes of no access under the thread stack (more than the engine's largest
 * frame, 256 bytes, so no frame can step over it). Everything else keeps the default map (PRIVDEFENA).
 * MemManage, BusFault and UsageFault get their own exception numbers instead of escalating to HardFault.
 */
static void mpu_setup(void)
{
#if !defined(__ARM_ARCH_6M__)
    extern uint8_t __flash_start[], __flash_size_log2[], __stack_guard[], __stack_guard_size[];
    const uint32_t guard = (uint32_t)(uintptr_t)__stack_guard_size;
    if (((REG(MPU_TYPE) >> 8) & 0xFFu) < 2) {
        return; /* no MPU */
    }
    REG(MPU_RNR) = 0;
    REG(MPU_RBAR) = (uint32_t)(uintptr_t)__flash_start;
    REG(MPU_RASR) = (6u << 24) /* AP: read-only */ | (1u << 17) /* C: normal memory */
        | (((uint32_t)(uintptr_t)__flash_size_log2 - 1u) << 1) /* 2^(SIZE+1) bytes */ | 1u;
    if (guard >= 32u && (guard & (guard - 1u)) == 0) {
        uint32_t log2 = 0;
        while ((1u << log2) < guard) {
            log2++;
        }
        REG(MPU_RNR) = 1;
        REG(MPU_RBAR) = (uint32_t)(uintptr_t)__stack_guard;
        REG(MPU_RASR) = (1u << 28) /* XN */ | (0u << 24) /* AP: no access */ | ((log2 - 1u) << 1) | 1u;
    }
    REG(SCB_SHCSR) |= (1u << 16) | (1u << 17) | (1u << 18);
    REG(MPU_CTRL) = (1u << 2) /* PRIVDEFENA */ | 1u;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
}

__attribute__((noreturn, used)) static void reset_c(void)
{
    uint32_t *src = __data_load, *dst = __data_start;
    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }
    /* paint the unused stack below the current frame (this function's frame is a few words) */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (dst = __stack_limit; dst < sp - 16; dst++) {
        *dst = STACK_PAINT;
    }
    mpu_setup();
#if defined(__ARM_FP)
    REG(SCB_CPACR) |= 0xFu << 20; /* CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    sh_exit((uint32_t)main());
}

/* Thread mode on PSP = __stack_top when the handlers have their own stack (MSP = __msp_top != __stack_top). */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr r0, =__stack_top\n\t"
        "ldr r1, =__msp_top\n\t"
        "cmp r0, r1\n\t"
        "beq 1f\n\t"
        "msr psp, r0\n\t"
        "movs r1, #2\n\t"
        "msr control, r1\n\t"
        "isb\n"
        "1:\n\t"
        "ldr r0, =reset_c\n\t"
        "bx r0\n\t"
        ".ltorg\n");
}

/* Bytes of stack ever used since reset (lowest word that lost its paint). */
uint32_t bm_stack_used(void)
{
    const uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

uint32_t bm_stack_size(void)
{
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

/* Runs on the handler stack (or, on M0, on what is left of the only one) with the stacked frame. */
__attribute__((noreturn, used)) static void fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
#if !defined(__ARM_ARCH_6M__)
    REG(MPU_CTRL) = 0; /* the frame may sit in the guard */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    sh_flush();
    sh_puts("\nFAULT exception=");
    sh_put_u32(ipsr & 0x1FFu);
    if ((uintptr_t)frame < (uintptr_t)__stack_limit) {
        sh_puts(" stack_overflow=1");
    }
    sh_puts(" pc=");
    sh_put_hex32(frame[6]);
    sh_puts(" lr=");
    sh_put_hex32(frame[5]);
    sh_puts(" sp=");
    sh_put_hex32((uint32_t)(uintptr_t)frame);
    sh_puts(" exc_return=");
    sh_put_hex32(exc_return);
#if !defined(__ARM_ARCH_6M__)
    sh_puts(" cfsr=");
    sh_put_hex32(REG(SCB_CFSR));
    sh_puts(" hfsr=");
    sh_put_hex32(REG(SCB_HFSR));
    sh_puts(" mmfar=");
    sh_put_hex32(REG(SCB_MMFAR));
    sh_puts(" bfar=");
    sh_put_hex32(REG(SCB_BFAR));
#endif
    sh_puts("\n");
    sh_exit(99);
}

/* Stacked frame from MSP or PSP (EXC_RETURN bit 2), then fault_report. Thumb-1 only (ARMv6-M too). */
__attribute__((naked, noreturn)) void Fault_Handler(void)
{
    __asm__ volatile(
        "movs r0, #4\n\t"
        "mov r1, lr\n\t"
        "tst r0, r1\n\t"
        "beq 1f\n\t"
        "mrs r0, psp\n\t"
        "b 2f\n"
        "1:\n\t"
        "mrs r0, msp\n"
        "2:\n\t"
        "ldr r2, =fault_report\n\t"
        "bx r2\n\t"
        ".ltorg\n");
}

/* The 16 system exception vectors; the harness uses no interrupts. */
__attribute__((section(".vectors"), used)) void (*const bm_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__msp_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMon */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
