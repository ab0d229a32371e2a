package io.vblk.cli;

import java.util.Locale;

/**
 * qemu-io's statistics lines, reproduced from its observable output (qemu-io 7.2): the
 * "wrote 4096/4096 bytes at offset 0" line, the "4 KiB, 1 ops; 00.00 sec (x MiB/sec and y
 * ops/sec)" line (print_report, cvtstr, timestr), and the {@code -C} machine-readable form.
 */
public final class QemuIoFormat {
    private QemuIoFormat() {}

    private static final String[] SUFFIX = {" KiB", " MiB", " GiB", " TiB", " PiB", " EiB"};

    /**
     * A byte count or rate the way cvtstr prints it: three decimals with a binary unit from KiB
     * up, six decimals and " bytes" below, and a trailing ".000..." cut off ("4 KiB", "512 bytes",
     * "9.591 MiB", "417.606194 bytes").
     */
    public static String cvtstr(double value) {
        String s;
        String suffix;
        int unit = -1;
        for (int i = SUFFIX.length - 1; i >= 0; i--) {
            if (value >= Math.scalb(1.0, 10 * (i + 1))) {
                unit = i;
                break;
            }
        }
        if (unit >= 0) {
            suffix = SUFFIX[unit];
            s = String.format(Locale.ROOT, "%.3f", value / Math.scalb(1.0, 10 * (unit + 1)));
        } else {
            suffix = " bytes";
            s = String.format(Locale.ROOT, "%f", value);
        }
        int trim = s.indexOf(".000");
        return trim >= 0 ? s.substring(0, trim) + suffix : s + suffix;
    }

    /** Elapsed time as timestr prints it: "00.01 sec", "01:02.50", "1:02:03.04"; fixed form "0:00:00.00" for -C. */
    public static String timestr(long nanos, boolean fixed) {
        long totalSec = nanos / 1_000_000_000L;
        long hundredths = (nanos % 1_000_000_000L) / 10_000_000L;
        long h = totalSec / 3600;
        long m = (totalSec / 60) % 60;
        long s = totalSec % 60;
        if (fixed || h > 0) {
            return String.format(Locale.ROOT, "%d:%02d:%02d.%02d", h, m, s, hundredths);
        }
        if (m > 0) {
            return String.format(Locale.ROOT, "%02d:%02d.%02d", m, s, hundredths);
        }
        return String.format(Locale.ROOT, "%02d.%02d sec", s, hundredths);
    }

    /** value per second over {@code nanos} (tdiv). */
    static double perSecond(double value, long nanos) {
        return nanos <= 0 ? 0 : value / (nanos / 1e9);
    }

    /**
     * The report after a completed command (print_report): two lines normally, one
     * comma-separated line with {@code machine} (-C).
     *
     * @param op    "read", "wrote", "discard"
     * @param count bytes asked for, {@code total} bytes done, {@code ops} operations
     */
    public static String report(String op, long nanos, long offset, long count, long total, int ops, boolean machine) {
        if (machine) {
            return String.format(Locale.ROOT, "%d,%d,%s,%.3f,%.3f", total, ops, timestr(nanos, true),
                    perSecond(total, nanos), perSecond(ops, nanos));
        }
        return op + " " + total + "/" + count + " bytes at offset " + offset + "\n"
                + cvtstr(total) + ", " + ops + " ops; " + timestr(nanos, false) + " ("
                + cvtstr(perSecond(total, nanos)) + "/sec and "
                + String.format(Locale.ROOT, "%.4f", perSecond(ops, nanos)) + " ops/sec)";
    }

    /**
     * The hex dump of {@code read -v} (dump_buffer): 16 bytes a line, "%08x:  " address, "%02x "
     * per byte, a space, then the letters and digits (isalnum in the C locale) with '.' for the rest.
     */
    public static String dump(java.lang.foreign.MemorySegment buf, long offset, long len) {
        StringBuilder sb = new StringBuilder();
        for (long i = 0; i < len; i += 16) {
            long n = Math.min(16, len - i);
            sb.append(String.format(Locale.ROOT, "%08x:  ", offset + i));
            for (long j = 0; j < n; j++) {
                sb.append(String.format(Locale.ROOT, "%02x ", buf.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i + j) & 0xff));
            }
            sb.append(' ');
            for (long j = 0; j < n; j++) {
                int c = buf.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i + j) & 0xff;
                sb.append((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? (char) c : '.');
            }
            sb.append('\n');
        }
        return sb.toString();
    }
}
