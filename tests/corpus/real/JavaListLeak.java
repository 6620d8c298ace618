// Case java-list-leak — label: LEAK.
//
// Why: ten times a second the program adds a fresh 150 KiB byte[] to a
// static list that is never cleared: ~1.5 MiB/s stays reachable from a
// class (a GC root), so no collection can free it. Each tick also allocates
// and drops ~2 MiB of garbage, so the young generation is collected all the
// time. Run with -Xmx256m: the heap runs out (OutOfMemoryError) after about
// three minutes, and the process's rss grows as the JVM commits heap for
// the live data.
//
// Compiled with javac at record time; stopped by SIGTERM from the corpus
// driver.
import java.util.ArrayList;
import java.util.List;

public class JavaListLeak {
    static final List<byte[]> KEPT = new ArrayList<>();

    public static void main(String[] args) throws InterruptedException {
        long n = 0;
        long sink = 0;
        while (true) {
            byte[] kept = new byte[150 * 1024];
            kept[(int) (n % kept.length)] = (byte) n;
            KEPT.add(kept);
            // Churn: short-lived arrays, dropped at once.
            for (int i = 0; i < 64; i++) {
                byte[] garbage = new byte[32 * 1024];
                garbage[i] = (byte) i;
                sink += garbage[i];
            }
            n++;
            if (sink == 42) {
                System.out.println(sink); // keeps the churn from being optimised away
            }
            Thread.sleep(100);
        }
    }
}
