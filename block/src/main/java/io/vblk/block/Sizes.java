package io.vblk.block;

import java.util.Locale;

/** Size strings with k, M, G, T, P, E suffixes (powers of 1024), as qemu-img and qemu-io take them. */
public final class Sizes {
    private Sizes() {}

    /** Parses "4096", "4k", "1.5M", "1G", "512b"; throws IllegalArgumentException with a short message. */
    public static long parse(String s) {
        String t = s.trim();
        if (t.isEmpty()) throw new IllegalArgumentException("empty size");
        char last = Character.toLowerCase(t.charAt(t.length() - 1));
        long mult = switch (last) {
            case 'b' -> 1;
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            case 'g' -> 1L << 30;
            case 't' -> 1L << 40;
            case 'p' -> 1L << 50;
            case 'e' -> 1L << 60;
            default -> 0;
        };
        String num = mult == 0 ? t : t.substring(0, t.length() - 1);
        if (mult == 0) mult = 1;
        try {
            if (num.startsWith("0x") || num.startsWith("0X")) {
                return Math.multiplyExact(Long.parseLong(num.substring(2), 16), mult);
            }
            if (num.contains(".")) {
                double d = Double.parseDouble(num) * mult;
                if (d < 0 || d >= 9.2e18) throw new IllegalArgumentException("size out of range: " + s);
                return (long) d;
            }
            long v = Long.parseLong(num);
            if (v < 0) throw new IllegalArgumentException("negative size: " + s);
            return Math.multiplyExact(v, mult);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("invalid size: " + s);
        }
    }

    /** Human form as qemu-img prints it: "1 GiB", "64 KiB", "512 B", "1.5 GiB". */
    public static String human(long v) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int u = 0;
        double d = v;
        while (d >= 1024 && u < units.length - 1) {
            d /= 1024;
            u++;
        }
        if (u == 0) return v + " B";
        String num = (d == Math.floor(d)) ? String.valueOf((long) d) : String.format(Locale.ROOT, "%.3g", d);
        return num + " " + units[u];
    }
}
