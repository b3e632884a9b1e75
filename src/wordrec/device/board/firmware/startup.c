/* Bare-metal start-up for the Cortex-M55 of Arm's SSE-300 (Corstone-300; QEMU mps3-an547, FVP).
 * Own vector table and reset handler instead of newlib's rdimon crt0, whose stack/heap come from a
 * semihosting HEAPINFO call that does not describe this memory map. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

extern uint32_t __stack_top, __bss_start__, __bss_end__;
extern int main(void);
extern void initialise_monitor_handles(void);

/* newlib's exit path references these; there are no C++ constructors to run. */
void _init(void) {}
void _fini(void) {}

void Reset_Handler(void) {
  /* CPACR: full access to CP10/CP11 = FPU and MVE (Helium); they fault on first use otherwise. */
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;
  __asm volatile("dsb\n isb" ::: "memory");
  for (uint32_t* p = &__bss_start__; p < &__bss_end__;) *p++ = 0;
  initialise_monitor_handles();
  exit(main());
}

/* Any fault ends the run with a distinctive status instead of hanging the simulator. */
void Fault_Handler(void) { _exit(0x7f); }

__attribute__((section(".vectors"), used)) void* const wordrec_vectors[16] = {
    &__stack_top,  Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0,             0,             0,             0,             Fault_Handler,
    Fault_Handler, 0,             Fault_Handler, Fault_Handler,
};
