/* Case c-batch-exit — label: NOT A LEAK.
 *
 * Why: like a compiler, the program works in five phases of 4 s; each
 * phase builds 100 MiB of data (1 MiB blocks, written) over 3 s and then
 * holds it for 1 s, and every phase keeps what the earlier ones built. It
 * reaches ~500 MiB after 20 s and then EXITS ON ITS OWN with status 0, and
 * the kernel takes everything back. The growth is the size of its input,
 * bounded and finished, not memory kept past its use: a batch job, not a
 * leak.
 *
 * Built with gcc at record time; never signalled by the corpus driver.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PHASES 5
#define BLOCKS_PER_PHASE 100
#define BLOCK (1UL << 20)

int main(void)
{
    static char *blocks[PHASES * BLOCKS_PER_PHASE];
    struct timespec tick = {0, 30000000L}; /* 100 blocks in 3 s */
    int n = 0;
    for (int phase = 0; phase < PHASES; phase++) {
        for (int i = 0; i < BLOCKS_PER_PHASE; i++, n++) {
            blocks[n] = malloc(BLOCK);
            if (!blocks[n])
                return 1;
            memset(blocks[n], phase + 1, BLOCK);
            nanosleep(&tick, NULL);
        }
        sleep(1);
    }
    return blocks[n - 1][0] == PHASES ? 0 : 1;
}
