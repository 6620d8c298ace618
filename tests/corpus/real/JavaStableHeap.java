// Case java-stable-heap — label: NOT A LEAK.
//
// Why: the program keeps a fixed live set (64 slots of 512 KiB = 32 MiB)
// and ten times a second replaces one slot and allocates ~4 MiB of garbage
// it drops at once. The live set never grows, so the heap cannot run out;
// the garbage collector reclaims everything else. Run with -Xmx1g, so the
// JVM is free to commit more heap over time (rss may rise in steps as it
// sizes the young generation): that is the JVM choosing to use memory it
// was allowed, not memory the program keeps and should give back.
//
// Compiled with javac at record time; stopped by SIGTERM from the corpus
// driver.
public class JavaStableHeap {
    public static void main(String[] args) throws InterruptedException {
        byte[][] live = new byte[64][];
        for (int i = 0; i < live.length; i++) {
            live[i] = new byte[512 * 1024];
        }
        long n = 0;
        long sink = 0;
        while (true) {
            live[(int) (n % live.length)] = new byte[512 * 1024];
            for (int i = 0; i < 128; i++) {
                byte[] garbage = new byte[32 * 1024];
                garbage[i] = (byte) n;
                sink += garbage[i];
            }
            n++;
            if (sink == 42) {
                System.out.println(sink);
            }
            Thread.sleep(100);
        }
    }
}
