/* Case c-vm-leak — label: LEAK.
 *
 * Why: every 3 s the program maps a fresh 4 MiB anonymous region, touches
 * one page of it and never unmaps it (like a pool that reserves an arena
 * per request and forgets it). Its address space grows ~1.3 MiB/s while rss
 * grows by one page per region. The corpus driver runs it under
 * `ulimit -v 786432` (768 MiB) set inside its own shell, so what runs out
 * is the address space: after about ten minutes mmap fails with ENOMEM,
 * although the machine has plenty of free RAM. Only virtual size shows it.
 *
 * Built with gcc at record time; stopped by SIGTERM from the corpus driver.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGION (4UL << 20)

int main(void)
{
    for (unsigned long i = 0;; i++) {
        char *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            /* The limit is reached: the leak has done its damage. Say so
             * and keep running, as a server that logs errors would. */
            perror("c-vm-leak: mmap");
        } else {
            p[(i * 4096) % REGION] = 1;
        }
        sleep(3);
    }
}
