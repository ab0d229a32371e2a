package io.vblk.cli;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;

/** CPU time of this process (user + system, all threads), for {@code vblk bench}'s {@code cpu_s}. */
public final class CpuTime {
    private CpuTime() {}

    /** Nanoseconds of CPU this process has used, or -1 when the platform does not tell. */
    public static long processNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            long t = os.getProcessCpuTime();
            if (t >= 0) return t;
        }
        return procSelfStat();
    }

    /** utime + stime from /proc/self/stat (fields 14 and 15, in clock ticks, assumed 100 Hz). */
    static long procSelfStat() {
        try {
            String s = Files.readString(Path.of("/proc/self/stat"));
            String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
            long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
            return ticks * 10_000_000L;
        } catch (Exception e) {
            return -1;
        }
    }
}
