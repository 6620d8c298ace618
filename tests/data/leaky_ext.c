/* A shared library for the pytest --memleak-locate test
 * (tests/tests/pytest_plugin.rs), loaded with ctypes: one function keeps
 * what it allocates, one frees it again. Built with -O0
 * -fno-omit-frame-pointer so the leaking function is named at the top of
 * its stack.
 *
 * As in leaky.c, memory is touched by a loop in the allocating function
 * itself (a memset would fault inside libc, which has no frame pointer),
 * and the kept blocks are above glibc's mmap threshold: fresh mappings,
 * first touched here. */
#include <stdlib.h>

#define LEAK_BLOCK (256 * 1024)
#define CHURN_BLOCK (64 * 1024)

/* Keeps `mib` MiB, every page touched. */
__attribute__((noinline)) void leak_in_c(int mib) {
    for (int n = 0; n < mib * 4; n++) {
        char *p = malloc(LEAK_BLOCK);
        for (size_t i = 0; i < LEAK_BLOCK; i += 64)
            p[i] = (char)i; /* kept: never freed */
    }
}

/* Touches and frees `mib` MiB in small blocks: the heap reuses them. */
__attribute__((noinline)) void churn_in_c(int mib) {
    for (int n = 0; n < mib * 16; n++) {
        char *p = malloc(CHURN_BLOCK);
        for (size_t i = 0; i < CHURN_BLOCK; i += 64)
            p[i] = (char)i;
        free(p);
    }
}
