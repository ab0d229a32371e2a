package io.vblk.cli.img;

import io.vblk.aio.IoThreads;
import io.vblk.aio.LinuxConstants;
import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Shared plumbing of the image tools (qemu-img.c helpers): a small getopt for qemu-img's option
 * style, format probing, opening the file node on an I/O thread, qemu's size_to_str, and disk
 * usage from st_blocks. Private to this package.
 */
final class ImgSupport {
    private ImgSupport() {}

    /** A command-line usage error: printed as one line, exit 1. */
    static final class UsageException extends Exception {
        UsageException(String msg) {
            super(msg, null, false, false);
        }
    }

    /** Parsed arguments: options by name (last wins, "-o" accumulates with ','), flags, positionals. */
    static final class Args {
        final Map<String, String> opts = new HashMap<>();
        final List<String> positional = new ArrayList<>();

        String get(String k) {
            return opts.get(k);
        }

        boolean has(String k) {
            return opts.containsKey(k);
        }
    }

    /**
     * Parses qemu-img style options: short options from {@code withArg} take a value (attached or
     * next), short flags from {@code flags}; long options {@code --name=value} or {@code --name value}
     * for names in {@code longWithArg}, and long flags in {@code longFlags}. "--" ends options.
     */
    static Args parse(String[] argv, String withArg, String flags, Set<String> longWithArg, Set<String> longFlags)
            throws UsageException {
        Args a = new Args();
        boolean opts = true;
        for (int i = 0; i < argv.length; i++) {
            String s = argv[i];
            if (opts && s.equals("--")) {
                opts = false;
            } else if (opts && s.startsWith("--")) {
                String name = s.substring(2);
                String val = null;
                int eq = name.indexOf('=');
                if (eq >= 0) {
                    val = name.substring(eq + 1);
                    name = name.substring(0, eq);
                }
                if (longWithArg.contains(name)) {
                    if (val == null) {
                        if (i + 1 >= argv.length) throw new UsageException("option '--" + name + "' requires an argument");
                        val = argv[++i];
                    }
                    a.opts.put("--" + name, val);
                } else if (longFlags.contains(name) && val == null) {
                    a.opts.put("--" + name, "");
                } else {
                    throw new UsageException("unrecognized option '" + s + "'");
                }
            } else if (opts && s.startsWith("-") && s.length() > 1) {
                for (int j = 1; j < s.length(); j++) {
                    char c = s.charAt(j);
                    if (withArg.indexOf(c) >= 0) {
                        String val;
                        if (j + 1 < s.length()) {
                            val = s.substring(j + 1);
                        } else if (i + 1 < argv.length) {
                            val = argv[++i];
                        } else {
                            throw new UsageException("option requires an argument -- '" + c + "'");
                        }
                        String key = "-" + c;
                        if (c == 'o' && a.opts.containsKey(key)) val = a.opts.get(key) + "," + val;
                        a.opts.put(key, val);
                        break;
                    } else if (flags.indexOf(c) >= 0) {
                        a.opts.put("-" + c, "");
                    } else {
                        throw new UsageException("invalid option -- '" + c + "'");
                    }
                }
            } else {
                a.positional.add(s);
            }
        }
        return a;
    }

    /** The --output value: human or json. */
    static boolean jsonOutput(Args a) throws UsageException {
        String o = a.get("--output");
        if (o == null || o.equals("human")) return false;
        if (o.equals("json")) return true;
        throw new UsageException("--output must be used with human or json as argument.");
    }

    /** "qcow2" if the file starts with the qcow2 magic, else "raw" (bdrv_probe_all with our two formats). */
    static String probe(Path p) throws IOException {
        try (InputStream in = Files.newInputStream(p)) {
            byte[] b = in.readNBytes(4);
            if (b.length == 4 && (b[0] & 0xff) == 0x51 && (b[1] & 0xff) == 0x46 && (b[2] & 0xff) == 0x49 && (b[3] & 0xff) == 0xfb) {
                return "qcow2";
            }
        }
        return "raw";
    }

    /** Starts the I/O thread the tools run their coroutines on. */
    static AioContext startContext() {
        return IoThreads.start("vblk-img");
    }

    /** Opens a {@code file} protocol node (buffered, thread pool) for the image file. */
    static BlockNode openFile(String filename, boolean writable) throws BlockException {
        return BlockNode.open(new BlockOptions().put("driver", "file").put("filename", filename)
                .put("aio", "threads").put("read-only", writable ? "off" : "on"));
    }

    /** A read of an image through a {@link io.vblk.qcow2.check.CheckFile}. */
    interface CheckFileRead<T> {
        T read(io.vblk.qcow2.check.CheckFile f) throws BlockException;
    }

    /**
     * Runs {@code body} on {@code ctx} over a CheckFile of {@code n} (closed afterwards) and returns
     * its result; a BlockException it throws is rethrown on the caller's thread.
     */
    static <T> T readWith(AioContext ctx, BlockNode n, CheckFileRead<T> body) throws BlockException {
        Object[] out = {null};
        BlockException[] error = {null};
        ctx.run(() -> {
            io.vblk.qcow2.check.CheckFile f = io.vblk.qcow2.check.CheckFile.of(n);
            try {
                out[0] = body.read(f);
            } catch (BlockException e) {
                error[0] = e;
            } finally {
                f.close();
            }
            return 0;
        });
        if (error[0] != null) throw error[0];
        @SuppressWarnings("unchecked") T t = (T) out[0];
        return t;
    }

    /** Closes a node on its context, ignoring errors (tool exit path). */
    static void close(AioContext ctx, BlockNode n) {
        if (n != null) ctx.run(n::close);
    }

    /** qemu's size_to_str: "%0.3g" of the value in the largest binary unit below 1000. */
    static String sizeToStr(long val) {
        String[] suffixes = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double scaled = unsigned(val) / (1000.0 / 1024.0);
        int exp = scaled == 0 ? 0 : Math.getExponent(scaled) + 1; // frexp exponent
        int i = (exp - 1) / 10;
        if (i < 0) i = 0;
        double v = unsigned(val) / (double) (1L << (i * 10));
        return formatG3(v) + " " + suffixes[i];
    }

    private static double unsigned(long v) {
        return v >= 0 ? v : (double) (v >>> 1) * 2.0;
    }

    /** C's "%0.3g" for values in [0, 1e6). */
    static String formatG3(double v) {
        if (v == 0) return "0";
        BigDecimal d = new BigDecimal(v).round(new MathContext(3));
        if (d.precision() - d.scale() > 3) {
            // %g switches to exponent form at 1e3 and above with precision 3
            return String.format("%.2e", v).replace("e+0", "e+");
        }
        d = d.stripTrailingZeros();
        return d.scale() < 0 ? d.setScale(0).toPlainString() : d.toPlainString();
    }

    /** Bytes allocated on disk (st_blocks * 512), or -1 (qemu's actual-size). */
    static long allocatedSize(String filename) {
        int fd = Native.LIBC.open(filename, Syscalls.O_RDONLY, 0);
        if (fd < 0) return -1;
        try (NativeBuffer b = NativeBuffer.allocate(LinuxConstants.STAT_SIZE, 16)) {
            if (Native.LIBC.fstat(fd, b.address()) != 0) return -1;
            return NativeMemory.getLongLE(b.address() + STAT_ST_BLOCKS) * 512;
        } finally {
            Native.LIBC.close(fd);
        }
    }

    /** st_blocks in struct stat: offset 64 on both x86_64 and the generic (aarch64) layout. */
    private static final int STAT_ST_BLOCKS = 64;

    /** Parses a size with qemu's suffixes (k, M, G, T, P, E; powers of 1024; optional 'B'), or -1. */
    static long parseSize(String s) {
        if (s == null || s.isEmpty()) return -1;
        int i = 0;
        while (i < s.length() && (Character.isDigit(s.charAt(i)) || s.charAt(i) == '.')) i++;
        if (i == 0) return -1;
        String num = s.substring(0, i);
        String suf = s.substring(i);
        if (suf.endsWith("B") && suf.length() == 2) suf = suf.substring(0, 1);
        int shift = switch (suf) {
            case "", "b", "B" -> 0;
            case "k", "K" -> 10;
            case "m", "M" -> 20;
            case "g", "G" -> 30;
            case "t", "T" -> 40;
            case "p", "P" -> 50;
            case "e", "E" -> 60;
            default -> -1;
        };
        if (shift < 0) return -1;
        try {
            BigDecimal v = new BigDecimal(num).multiply(BigDecimal.valueOf(2).pow(shift));
            if (v.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) return -1;
            if (shift == 0 && num.contains(".")) return -1;
            return v.longValue();
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /**
     * The format of an existing image file for info and map: {@code -f} if given, else probed;
     * prints qemu-img's one-line error and returns null when the file is missing, unreadable or of
     * a format other than raw and qcow2.
     */
    static String imageFormat(String filename, String fmt, java.io.PrintStream err) {
        java.nio.file.Path p = java.nio.file.Path.of(filename);
        if (!java.nio.file.Files.exists(p)) {
            err.println("vblk: Could not open '" + filename + "': Could not open '" + filename + "': No such file or directory");
            return null;
        }
        try {
            if (fmt == null) fmt = probe(p);
        } catch (java.io.IOException e) {
            err.println("vblk: Could not open '" + filename + "': " + e.getMessage());
            return null;
        }
        if (!fmt.equals("qcow2") && !fmt.equals("raw")) {
            err.println("vblk: Unknown file format '" + fmt + "'");
            return null;
        }
        return fmt;
    }

    /**
     * Result of {@link #parseOneImage}: the arguments, the image's file name and its format (given
     * or probed), or the exit code when the command is already done (>= 0).
     */
    record OneImage(Args args, boolean json, String filename, String format, int exitCode) {}

    /**
     * Parses the arguments of a command that takes exactly one image (info, map): options,
     * {@code --help} (prints the usage, exit 0), {@code --output=human|json}, qemu-img's usage
     * errors (one line plus the usage, exit 1), and the image's format from {@code -f} or a probe
     * ({@link #imageFormat}; a missing file or unknown format is exit 1).
     */
    static OneImage parseOneImage(String[] argv, String withArg, String flags, Set<String> longWithArg,
                                  Set<String> longFlags, String usage, java.io.PrintStream out, java.io.PrintStream err) {
        try {
            Args a = parse(argv, withArg, flags, longWithArg, longFlags);
            if (a.has("-h") || a.has("--help")) {
                out.println(usage);
                return new OneImage(a, false, null, null, 0);
            }
            boolean json = jsonOutput(a);
            if (a.positional.size() != 1) throw new UsageException("Expecting one image file name");
            String filename = a.positional.get(0);
            String fmt = imageFormat(filename, a.get("-f"), err);
            return new OneImage(a, json, filename, fmt, fmt == null ? 1 : -1);
        } catch (UsageException e) {
            err.println("vblk: " + e.getMessage());
            err.println(usage);
            return new OneImage(null, false, null, null, 1);
        }
    }
}
