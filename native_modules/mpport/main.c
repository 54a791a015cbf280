/*
 * main.c - the mpyml QEMU Cortex-M MicroPython port: startup, UART console, ticks, soft reset loop.
 *
 * Boards (QEMU machines; see Makefile):
 *   mps2-an385/an386/an500 (M3/M4/M7): CMSDK APB UART0 at 0x40004000 (-serial), CMSDK APB timer 0 at
 *       0x40000000 counting down at the 25 MHz peripheral clock.
 *   microbit (M0, nRF51): UART0 at 0x40002000, TIMER0 at 0x40008000 in 32-bit timer mode at 1 MHz.
 * No interrupt handlers: interrupts stay masked (PRIMASK); the UART's receive interrupt and a 1 ms tick
 * (a second hardware timer) only wake WFI, so an idle REPL sleeps instead of spinning;
 * the VM polls the UART every few branches (MICROPY_VM_HOOK_LOOP) so that Ctrl-C interrupts running Python
 * code; bytes that arrive meanwhile are kept in a small ring buffer for the REPL.
 * Heap: MPPORT_HEAP_SIZE, or the size in the boot parameter words (set by QEMU at reset or by
 * mpport.heap_size() for the next soft reset). Files live outside the heap (ramfs.c) and survive soft resets.
 */
#include <stdint.h>
#include <string.h>

#include "py/builtin.h"
#include "py/compile.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/stream.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/readline/readline.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"
#include "ramfs.h"

#define REG(a) (*(volatile uint32_t *)(a))

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[], _sstack[];

/* The heap: MPPORT_HEAP_SIZE (the board's default) unless the host put another size in the boot parameter
 * word at the top of RAM before reset (QEMU: -device loader,addr=...,data=..., see Makefile HEAP=); up to
 * MPPORT_HEAP_MAX. The parameter words lie outside .bss, so reset does not clear them. */
#define MPPORT_HEAP_MAX (2 * 1024 * 1024)
#define BOOT_MAGIC 0x50414548u /* "HEAP" */
extern uint32_t _boot_param[]; /* [magic, heap bytes] (port.ld) */
static uint8_t heap[MPPORT_HEAP_MAX] __attribute__((aligned(16)));

size_t mpport_heap_size(void) {
    if (_boot_param[0] == BOOT_MAGIC && _boot_param[1] >= 16 * 1024 && _boot_param[1] <= MPPORT_HEAP_MAX) {
        return _boot_param[1] & ~15u;
    }
    return MPPORT_HEAP_SIZE;
}

int mpport_poll_count = 1;

/* ------------------------------------------------------------------------------------------- UART */
#if MPPORT_NRF51
#define UART 0x40002000u
#define UART_STARTRX (UART + 0x000u)
#define UART_STARTTX (UART + 0x008u)
#define UART_RXDRDY (UART + 0x108u)
#define UART_TXDRDY (UART + 0x11Cu)
#define UART_ENABLE (UART + 0x500u)
#define UART_RXD (UART + 0x518u)
#define UART_TXD (UART + 0x51Cu)
#define UART_BAUD (UART + 0x524u)

static void uart_init(void) {
    REG(UART_ENABLE) = 4;
    REG(UART_BAUD) = 0x01D7E000u; /* 115200 */
    REG(UART_STARTTX) = 1;
    REG(UART_STARTRX) = 1;
    REG(UART + 0x304u) = 1u << 2; /* INTENSET: RXDRDY (only to wake WFI: interrupts stay masked) */
}
#define UART_IRQ 2
static void uart_irq_clear(void) {
}

static int uart_rx_ready(void) {
    return REG(UART_RXDRDY) != 0;
}

static int uart_rx(void) {
    REG(UART_RXDRDY) = 0;
    return (int)(REG(UART_RXD) & 0xFFu);
}

static void uart_tx(uint8_t c) {
    REG(UART_TXDRDY) = 0;
    REG(UART_TXD) = c;
    while (!REG(UART_TXDRDY)) {
    }
}

/* TIMER0: 32-bit, prescaler 4 (16 MHz / 2^4 = 1 MHz) */
#define TIMER 0x40008000u
static void timer_init(void) {
    REG(TIMER + 0x504u) = 0; /* MODE: timer */
    REG(TIMER + 0x508u) = 3; /* BITMODE: 32 bit */
    REG(TIMER + 0x510u) = 4; /* PRESCALER */
    REG(TIMER + 0x00Cu) = 1; /* TASKS_CLEAR */
    REG(TIMER + 0x000u) = 1; /* TASKS_START */
}

static uint32_t timer_read_us(void) {
    REG(TIMER + 0x040u) = 1; /* TASKS_CAPTURE[0] */
    return REG(TIMER + 0x540u);
}
#define TIMER_TICKS_PER_US 1u

/* TIMER1: a 1 ms wake-up tick for WFI (COMPARE0 -> CLEAR short, its interrupt enabled but masked) */
#define TICK_TIMER 0x40009000u
#define TICK_IRQ 9
static void tick_init(void) {
    REG(TICK_TIMER + 0x504u) = 0;          /* MODE: timer */
    REG(TICK_TIMER + 0x508u) = 0;          /* BITMODE: 16 bit */
    REG(TICK_TIMER + 0x510u) = 4;          /* PRESCALER: 1 MHz */
    REG(TICK_TIMER + 0x540u) = 1000;       /* CC[0] */
    REG(TICK_TIMER + 0x200u) = 1;          /* SHORTS: COMPARE0_CLEAR */
    REG(TICK_TIMER + 0x304u) = 1u << 16;   /* INTENSET: COMPARE0 */
    REG(TICK_TIMER + 0x000u) = 1;          /* TASKS_START */
}

static void tick_clear(void) {
    REG(TICK_TIMER + 0x140u) = 0;          /* EVENTS_COMPARE[0] */
}
#else
#define UART 0x40004000u
#define UART_DATA (UART + 0x00u)
#define UART_STATE (UART + 0x04u)
#define UART_CTRL (UART + 0x08u)
#define UART_BAUDDIV (UART + 0x10u)

static void uart_init(void) {
    REG(UART_BAUDDIV) = 25000000u / 115200u;
    REG(UART_CTRL) = 3u | (1u << 3); /* TX, RX enable; RX interrupt (only to wake WFI: interrupts stay masked) */
}
#define UART_IRQ 0
static void uart_irq_clear(void) {
    REG(UART + 0x0Cu) = 2u; /* INTSTATUS: clear RX */
}

static int uart_rx_ready(void) {
    return (REG(UART_STATE) & 2u) != 0;
}

static int uart_rx(void) {
    return (int)(REG(UART_DATA) & 0xFFu);
}

static void uart_tx(uint8_t c) {
    while (REG(UART_STATE) & 1u) {
    }
    REG(UART_DATA) = c;
}

/* CMSDK APB timer 0: counts down from RELOAD at 25 MHz */
#define TIMER 0x40000000u
static void timer_init(void) {
    REG(TIMER + 0x0u) = 0;
    REG(TIMER + 0x8u) = 0xFFFFFFFFu; /* RELOAD */
    REG(TIMER + 0x4u) = 0xFFFFFFFFu; /* VALUE */
    REG(TIMER + 0x0u) = 1;           /* enable, no interrupt */
}

static uint32_t timer_read_us(void) {
    return ~REG(TIMER + 0x4u); /* counting up */
}
#define TIMER_TICKS_PER_US 25u

/* CMSDK APB timer 1: a 1 ms wake-up tick for WFI (its interrupt enabled but masked) */
#define TICK_TIMER 0x40001000u
#define TICK_IRQ 9
static void tick_init(void) {
    REG(TICK_TIMER + 0x8u) = 25000u - 1u;  /* RELOAD: 1 ms */
    REG(TICK_TIMER + 0x4u) = 25000u - 1u;
    REG(TICK_TIMER + 0x0u) = 1u | (1u << 3); /* enable, interrupt enable */
}

static void tick_clear(void) {
    REG(TICK_TIMER + 0xCu) = 1u;           /* INTCLEAR */
}
#endif

/* 64-bit time from the 32-bit counter: extended on every read (the REPL loop and every ticks call read it;
 * the mps2 counter wraps every 171 s, the nRF51 one every 71 minutes). */
static uint32_t ticks_last;
static uint64_t ticks_total;

uint64_t mpport_ticks_us64(void) {
    uint32_t now = timer_read_us();
    ticks_total += (uint32_t)(now - ticks_last);
    ticks_last = now;
    return ticks_total / TIMER_TICKS_PER_US;
}

void mp_hal_delay_ms(mp_uint_t ms) {
    uint64_t end = mpport_ticks_us64() + (uint64_t)ms * 1000u;
    while (mpport_ticks_us64() < end) {
        mp_handle_pending(true);
        mpport_poll_input();
    }
}

void mp_hal_delay_us(mp_uint_t us) {
    uint64_t end = mpport_ticks_us64() + us;
    while (mpport_ticks_us64() < end) {
    }
}

uint64_t mp_hal_time_ns(void) {
    return mpport_ticks_us64() * 1000u;
}

/* ------------------------------------------------------------------------------------------- console */
#define RXBUF 512
static uint8_t rxbuf[RXBUF];
static volatile uint32_t rx_head, rx_tail;

void mpport_poll_input(void) {
    mpport_poll_count = 64;
    while (uart_rx_ready()) {
        int c = uart_rx();
        if (c == mp_interrupt_char) {
            rx_head = rx_tail = 0; /* as a board's UART IRQ: Ctrl-C drops what was queued */
            mp_sched_keyboard_interrupt();
            continue;
        }
        if (rx_head - rx_tail < RXBUF) {
            rxbuf[rx_head % RXBUF] = (uint8_t)c;
            rx_head++;
        } else {
            return; /* full: leave the rest in the UART (QEMU holds the host back) */
        }
    }
}

int mp_hal_stdin_rx_chr(void) {
    for (;;) {
        if (rx_head != rx_tail) {
            int c = rxbuf[rx_tail % RXBUF];
            rx_tail++;
            return c;
        }
        if (uart_rx_ready()) {
            return uart_rx();
        }
        (void)mpport_ticks_us64();
        /* idle: sleep until the UART has a byte (its interrupt is enabled but masked by PRIMASK: it only
         * wakes WFI) or the 1 ms tick fires. Clear the latched requests first, then look again, so that a
         * byte arriving in between re-pends the interrupt and WFI returns at once; the tick bounds any wake-up
         * that is still missed (seen under QEMU, ~1 in 10 connections, without it) to 1 ms. */
        uart_irq_clear();
        tick_clear();
        REG(0xE000E280u) = (1u << UART_IRQ) | (1u << TICK_IRQ); /* NVIC ICPR */
        if (uart_rx_ready() || rx_head != rx_tail) {
            continue;
        }
        __asm__ volatile ("wfi");
    }
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = 0;
    if ((poll_flags & MP_STREAM_POLL_RD) && (rx_head != rx_tail || uart_rx_ready())) {
        ret |= MP_STREAM_POLL_RD;
    }
    if (poll_flags & MP_STREAM_POLL_WR) {
        ret |= MP_STREAM_POLL_WR;
    }
    return ret;
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uart_tx((uint8_t)str[i]);
    }
    return len;
}

/* ------------------------------------------------------------------------------------------- runtime */
void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

void nlr_jump_fail(void *val) {
    (void)val;
    mp_hal_stdout_tx_str("FATAL: uncaught NLR\r\n");
    for (;;) {
    }
}

void NORETURN __fatal_error(const char *msg) {
    mp_hal_stdout_tx_str("FATAL: ");
    mp_hal_stdout_tx_str(msg);
    mp_hal_stdout_tx_str("\r\n");
    for (;;) {
    }
}

int main(void) {
    __asm__ volatile ("cpsid i" ::: "memory"); /* no interrupt handlers: NVIC lines only wake WFI */
    uart_init();
    tick_init();
    REG(0xE000E100u) = (1u << UART_IRQ) | (1u << TICK_IRQ); /* NVIC ISER */
    timer_init();
    ramfs_format();
    for (;;) {
        mp_stack_set_top(_estack);
        mp_stack_set_limit((char *)_estack - (char *)_sstack - 1024);
        gc_init(heap, heap + mpport_heap_size());
        mp_init();
        mp_obj_list_append(mp_sys_path, mp_obj_new_str("/lib", 4)); /* after mp_init's "" */
        readline_init0();
        pyexec_file_if_exists("boot.py");
        if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL) {
            pyexec_file_if_exists("main.py");
        }
        for (;;) {
            if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
                if (pyexec_raw_repl() != 0) {
                    break;
                }
            } else {
                if (pyexec_friendly_repl() != 0) {
                    break;
                }
            }
        }
        mp_hal_stdout_tx_str("MPY: soft reboot\r\n");
        gc_sweep_all();
        mp_deinit();
        ramfs_soft_reset();
    }
}

/* ------------------------------------------------------------------------------------------- startup */
__attribute__((noreturn)) void Reset_Handler(void) {
    uint32_t *src = _sidata, *dst = _sdata;
    while (dst < _edata) {
        *dst++ = *src++;
    }
    for (dst = _sbss; dst < _ebss; dst++) {
        *dst = 0;
    }
#if defined(__ARM_FP)
    REG(0xE000ED88u) |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile ("dsb\n\tisb" ::: "memory");
#endif
    main();
    for (;;) {
    }
}

static void put_hex(uint32_t v) {
    for (int i = 7; i >= 0; i--) {
        uart_tx((uint8_t)"0123456789abcdef"[(v >> (4 * i)) & 0xFu]);
    }
}

__attribute__((used)) void fault_report(const uint32_t *frame) {
    uint32_t ipsr;
    __asm__ volatile ("mrs %0, ipsr" : "=r" (ipsr));
    mp_hal_stdout_tx_str("\r\nFATAL: fault, exception ");
    put_hex(ipsr & 0x1FFu);
    mp_hal_stdout_tx_str(" pc ");
    put_hex(frame[6]);
    mp_hal_stdout_tx_str(" lr ");
    put_hex(frame[5]);
    mp_hal_stdout_tx_str("\r\n");
    for (;;) {
    }
}

__attribute__((naked)) void Fault_Handler(void) {
    __asm__ volatile (
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

__attribute__((section(".isr_vector"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)_estack,
    Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    0, 0, 0, 0,
    Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
