/* bench/avx2only.c: run a benchmark as if this CPU had AVX2 and no AVX-512 (nor VNNI).
 *
 *   make bench/avx2only.so
 *   LD_PRELOAD=$PWD/bench/avx2only.so PYTHONPATH=daemon .venv/bin/python bench/visual.py --sizes 720
 *
 * Why: onnxruntime (MLAS), numpy, OpenCV and x264 choose their kernels from what the `cpuid`
 * instruction reports, with no switch to turn AVX-512 off. redactd's int8 face model runs ~1.6x
 * faster with VNNI's int8 dot products than with AVX2's, so a speed ratio measured on a VNNI host
 * says little about an AVX2-only NAS. This library makes every `cpuid` the process (and every
 * thread it starts later, and every program it runs with this environment) executes report the
 * same CPU with the AVX-512 family, VNNI (AVX-512 and AVX) and BF16 bits cleared, so those libraries
 * take their AVX2 paths on this very core.
 *
 * How: Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID; /proc/cpuinfo flag `cpuid_fault`) makes
 * `cpuid` trap; the SIGSEGV handler below runs the real instruction with faulting briefly off,
 * clears the bits, writes the registers back and steps over the instruction. Anything else that
 * faults is handed back to the default action (a core dump, as without this library).
 *
 * Limits: the core itself is unchanged (Zen 4 running AVX2 code is not a Zen 2): compare ratios
 * measured in the same run, not absolute times. glibc picks its string functions before this
 * library loads. A process that installs its own SIGSEGV handler (python -X faulthandler) dies at
 * its next `cpuid`. Without CPUID faulting it exits at once with status 70 and says so.
 * Never part of redactd: a bench tool only.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

/* Leaf 7, sub-leaf 0: EBX avx512 f, dq, ifma, pf, er, cd, bw, vl; ECX vbmi, vbmi2, vnni, bitalg,
   vpopcntdq; EDX 4vnniw, 4fmaps, vp2intersect, fp16. Sub-leaf 1: EAX avx_vnni, avx512_bf16. */
#define L7_EBX ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31))
#define L7_ECX ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
#define L7_EDX ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23))
#define L7S1_EAX ((1u << 4) | (1u << 5))

static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    ucontext_t *uc = context;
    greg_t *reg = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) {
        signal(SIGSEGV, SIG_DFL); /* a real fault: it happens again on return, unhandled */
        return;
    }
    int saved = errno;
    unsigned leaf = (unsigned)reg[REG_RAX], sub = (unsigned)reg[REG_RCX], a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        b &= ~L7_EBX;
        c &= ~L7_ECX;
        d &= ~L7_EDX;
    } else if (leaf == 7 && sub == 1) {
        a &= ~L7S1_EAX;
    }
    reg[REG_RAX] = a;
    reg[REG_RBX] = b;
    reg[REG_RCX] = c;
    reg[REG_RDX] = d;
    reg[REG_RIP] += 2;
    errno = saved;
}

__attribute__((constructor)) static void hide_avx512(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0 || set_cpuid(0) != 0) {
        fprintf(stderr, "avx2only: this kernel or CPU has no CPUID faulting (arch_prctl ARCH_SET_CPUID: %s); "
                        "nothing can be hidden here\n", strerror(errno));
        exit(70);
    }
}
