package io.vblk.cli;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.RequestFlags;
import io.vblk.block.Sizes;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code vblk io}: qemu-io. Opens one image and runs {@code -c} commands in order (or lines from
 * stdin when there is none): read, write, aio_read, aio_write, aio_flush, flush, discard, length,
 * quit. Each prints qemu-io's lines, flushed as they happen. Like qemu-io, every command runs even
 * after one failed, and the exit code is 1 when any synchronous command failed (an aio_* failure
 * is printed but, as in qemu-io, does not change the exit code).
 */
public final class IoCommand {
    static final String USAGE = """
            Usage: vblk io [-f fmt] [-t cache] [-i native|threads] [-r] [--image-opts] -c CMD ... FILE

            Runs qemu-io style commands on FILE (or on `-f null|memory SIZE`), in order.
              -c, --cmd CMD        a command (repeatable); without -c, commands are read from stdin
              -f, --format FMT     image format (raw, qcow2, null, memory); default: probe
              -t, --cache MODE     none, writeback (default), writethrough, directsync, unsafe
              -i, --aio MODE       native (Linux AIO, needs -t none) or threads
              -k, --native-aio     same as -i native;  -n, --nocache: same as -t none
              -r, --read-only      open read-only
                  --image-opts     FILE is a key=value option string (driver=...,file.filename=...)
            Commands:
              read [-Cqv] [-P pattern [-s off] [-l len]] off len
              write [-Cfq] [-P pattern | -z [-u] [-n]] off len
              aio_read [-Cqv] [-P pattern] off len      aio_write [-Cfq] [-P pattern | -z [-u]] off len
              aio_flush   flush   discard [-Cq] off len   length   quit
            Exit status: 0 when every command succeeded, 1 otherwise (as qemu-io).
            """;

    /** BDRV_REQUEST_MAX_BYTES: the largest request qemu-io accepts. */
    static final long MAX_REQUEST = Integer.MAX_VALUE & ~511L;

    /** Commands that need write permission on the image. */
    static final java.util.Set<String> WRITE_COMMANDS = java.util.Set.of("write", "w", "aio_write", "discard", "d");

    private final PrintStream out;
    private final PrintStream err;
    private final OpenedImage img;
    private final Object aioLock = new Object();
    private int aioPending;                 // guarded by aioLock
    private boolean quit;
    private final long imageLength;         // at open; requests past it fail with EIO (BlockBackend)

    IoCommand(OpenedImage img, PrintStream out, PrintStream err) {
        this.img = img;
        this.out = out;
        this.err = err;
        this.imageLength = length();
    }

    public static int run(String[] args, PrintStream out, PrintStream err) throws CliException {
        ImageSpec spec = new ImageSpec();
        List<String> cmds = new ArrayList<>();
        GetOpt g = new GetOpt("", args, 0, "hc:f:t:i:rknU",
                Map.of("help", false, "cmd", true, "format", true, "cache", true, "aio", true, "read-only", false,
                        "native-aio", false, "nocache", false, "image-opts", false, "force-share", false));
        for (String o; (o = g.next()) != null; ) {
            if (o.equals("h") || o.equals("help")) {
                out.print(USAGE);
                return 0;
            } else if (o.equals("c") || o.equals("cmd")) {
                cmds.add(g.optarg());
            } else if (!spec.accept(o, g.optarg(), true)) {
                throw CliException.usage("vblk io: unhandled option " + o);
            }
        }
        if (g.operands().size() != 1) {
            throw CliException.usage(g.operands().isEmpty() ? "Expecting one image file name" : "Too many arguments: " + g.operands());
        }
        spec.filename = g.operands().get(0);
        spec.discardUnmap = true;   // qemu-io opens with BDRV_O_UNMAP: discards reach the image
        OpenedImage img;
        try {
            img = ImageOpener.open(spec, "vblk-io");
        } catch (BlockException e) {
            throw new CliException("can't open device " + spec.filename + ": " + e.getMessage());
        }
        IoCommand io = new IoCommand(img, out, err);
        boolean failed = false;
        try {
            if (cmds.isEmpty()) {
                BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
                try {
                    for (String line; !io.quit && (line = in.readLine()) != null; ) {
                        if (!line.isBlank() && io.execute(line) < 0) failed = true;
                    }
                } catch (IOException e) {
                    throw new CliException("reading commands: " + e.getMessage());
                }
            } else {
                for (String c : cmds) {
                    if (io.quit) break;
                    if (io.execute(c) < 0) failed = true;
                }
            }
            io.waitForAio();
        } finally {
            img.close();
        }
        return failed ? 1 : 0;
    }

    /** Runs one command line; returns 0 or a negative errno (qemuio_command). */
    int execute(String line) {
        String[] argv = line.trim().split("\\s+");
        String name = argv[0];
        if (img.node().isReadOnly() && WRITE_COMMANDS.contains(name)) {
            // the permission check qemu-io makes before a command that needs write access
            err.println("vblk: Block node is read-only");
            err.flush();
            return -Errno.EPERM;
        }
        try {
            return switch (name) {
                case "read", "r" -> checkArgs(argv, 2, -1) ? read(argv, false) : -Errno.EINVAL;
                case "aio_read" -> checkArgs(argv, 2, -1) ? read(argv, true) : -Errno.EINVAL;
                case "write", "w" -> checkArgs(argv, 2, -1) ? write(argv, false) : -Errno.EINVAL;
                case "aio_write" -> checkArgs(argv, 2, -1) ? write(argv, true) : -Errno.EINVAL;
                case "discard", "d" -> checkArgs(argv, 2, -1) ? discard(argv) : -Errno.EINVAL;
                case "flush", "f" -> checkArgs(argv, 0, 0) ? img.ctx().run(() -> img.node().flush()) : -Errno.EINVAL;
                case "aio_flush" -> {
                    if (!checkArgs(argv, 0, 0)) yield -Errno.EINVAL;
                    waitForAio();
                    yield 0;
                }
                case "length", "len" -> {
                    if (!checkArgs(argv, 0, 0)) yield -Errno.EINVAL;
                    long len = length();
                    if (len < 0) {
                        println("getlength: " + Strerror.of((int) -len));
                        yield (int) len;
                    }
                    println(QemuIoFormat.cvtstr(len));
                    yield 0;
                }
                case "quit", "q" -> {
                    quit = true;
                    yield 0;
                }
                case "help", "?" -> {
                    out.print(USAGE.substring(USAGE.indexOf("Commands:")));
                    out.flush();
                    yield 0;
                }
                default -> {
                    err.println("command \"" + name + "\" not found");
                    err.flush();
                    yield -Errno.EINVAL;
                }
            };
        } catch (CliException e) {
            err.println(e.getMessage());
            println(usageLine(name));
            return -Errno.EINVAL;
        } catch (UsageError e) {
            println(e.getMessage());
            return -Errno.EINVAL;
        }
    }

    private long length() {
        long[] len = new long[1];
        img.ctx().run(() -> {
            len[0] = img.node().getLength();
            return 0;
        });
        return len[0];
    }

    private boolean checkArgs(String[] argv, int min, int max) {
        int n = argv.length - 1;
        if ((max == -1 && n < min) || (max != -1 && (n < min || n > max))) {
            String exp = max == -1 ? "at least " + min : min == max ? String.valueOf(min) : "between " + min + " and " + max;
            err.println("bad argument count " + n + " to " + argv[0] + ", expected " + exp + " arguments");
            err.flush();
            return false;
        }
        return true;
    }

    /** A message printed on stdout by a command that then fails with EINVAL, as qemu-io's printf + return. */
    static final class UsageError extends Exception {
        UsageError(String msg) {
            super(msg, null, false, false);
        }
    }

    static String usageLine(String cmd) {
        return switch (cmd) {
            case "read", "r" -> "read [-Cqv] [-P pattern [-s off] [-l len]] off len -- reads a number of bytes at a specified offset";
            case "aio_read" -> "aio_read [-Cqv] [-P pattern] off len -- asynchronously reads a number of bytes";
            case "write", "w" -> "write [-Cfqnu] [-P pattern | -z] off len -- writes a number of bytes at a specified offset";
            case "aio_write" -> "aio_write [-Cfqu] [-P pattern | -z] off len -- asynchronously writes a number of bytes";
            case "discard", "d" -> "discard [-Cq] off len -- discards a number of bytes at a specified offset";
            default -> cmd;
        };
    }

    /** cvtnum plus qemu-io's messages for a bad number. */
    static long parseNum(String s) throws UsageError {
        long v;
        try {
            v = Sizes.parse(s);
        } catch (IllegalArgumentException e) {
            throw new UsageError("Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- " + s);
        }
        return v;
    }

    /** parse_pattern: a byte given in C notation (decimal, 0x hex, 0 octal). */
    static int parsePattern(String s) throws UsageError {
        try {
            long v;
            if (s.startsWith("0x") || s.startsWith("0X")) v = Long.parseLong(s.substring(2), 16);
            else if (s.length() > 1 && s.startsWith("0")) v = Long.parseLong(s.substring(1), 8);
            else v = Long.parseLong(s);
            if (v < 0 || v > 255) throw new NumberFormatException();
            return (int) v;
        } catch (NumberFormatException e) {
            throw new UsageError(s + " is not a valid pattern byte");
        }
    }

    private static long[] offLen(String cmd, List<String> ops) throws UsageError {
        if (ops.size() != 2) {
            throw new UsageError(usageLine(cmd));
        }
        long off = parseNum(ops.get(0));
        long len = parseNum(ops.get(1));
        if (len > MAX_REQUEST) {
            throw new UsageError("length cannot exceed " + MAX_REQUEST + ", given " + ops.get(1));
        }
        return new long[] {off, len};
    }

    private int read(String[] argv, boolean aio) throws CliException, UsageError {
        String cmd = argv[0];
        GetOpt g = new GetOpt(cmd, argv, 1, aio ? "CP:qvi" : "bCl:pP:qs:v", Map.of());
        boolean machine = false, quiet = false, dump = false;
        int pattern = -1;
        long patOff = 0, patLen = -1;
        boolean sflag = false, lflag = false;
        for (String o; (o = g.next()) != null; ) {
            switch (o) {
                case "C" -> machine = true;
                case "q" -> quiet = true;
                case "P" -> pattern = parsePattern(g.optarg());
                case "s" -> { patOff = parseNum(g.optarg()); sflag = true; }
                case "l" -> { patLen = parseNum(g.optarg()); lflag = true; }
                case "p", "i" -> { /* ignored, as in qemu-io */ }
                case "b" -> throw new UsageError("-b (VM state) is not supported by vblk io");
                case "v" -> dump = true;
                default -> throw new IllegalStateException(o);
            }
        }
        if (pattern < 0 && (sflag || lflag)) {
            throw new UsageError(usageLine(cmd));
        }
        long[] ol = offLen(cmd, g.operands());
        long off = ol[0], len = ol[1];
        if (!lflag) patLen = len - patOff;
        if (patLen < 0 || patLen + patOff > len) {
            throw new UsageError("pattern verification range exceeds end of read data");
        }
        NativeBuffer buf = NativeBuffer.allocate(Math.max(len, 1), 4096);
        buf.fill(0, buf.size(), (byte) 0xab);
        IoVector qiov = buf.asIoVector(0, len);
        final boolean fMachine = machine, fQuiet = quiet, fDump = dump;
        final int fPattern = pattern;
        final long fPatOff = patOff, fPatLen = patLen;
        if (aio) {
            startAio(() -> {
                long t0 = System.nanoTime();
                int r = checked(off, len, () -> img.node().preadv(off, len, qiov, 0));
                long t = System.nanoTime() - t0;
                finishRead("aio_read", r, t, buf, off, len, fPattern, fPatOff, fPatLen, fQuiet, fMachine, fDump);
            });
            return 0;
        }
        long t0 = System.nanoTime();
        int r = img.ctx().run(() -> checked(off, len, () -> img.node().preadv(off, len, qiov, 0)));
        long t = System.nanoTime() - t0;
        return finishRead("read", r, t, buf, off, len, pattern, patOff, patLen, quiet, machine, dump);
    }

    private int finishRead(String cmd, int r, long nanos, NativeBuffer buf, long off, long len, int pattern,
                           long patOff, long patLen, boolean quiet, boolean machine, boolean dump) {
        try {
            if (r < 0) {
                println(cmd + " failed: " + Strerror.of(-r));
                return r;
            }
            int ret = 0;
            if (pattern >= 0 && patLen > 0) {
                try (NativeBuffer cmp = NativeBuffer.allocate(patLen, 64)) {
                    cmp.fill(0, patLen, (byte) pattern);
                    long mm = MemorySegment.mismatch(buf.segment(), patOff, patOff + patLen, cmp.segment(), 0, patLen);
                    if (mm >= 0) {
                        println("Pattern verification failed at offset " + (off + patOff) + ", " + patLen + " bytes");
                        ret = -Errno.EINVAL;
                    }
                }
            }
            if (dump && !quiet) {
                out.print(QemuIoFormat.dump(buf.segment(), off, len));
                out.flush();
            }
            if (!quiet) {
                println(QemuIoFormat.report("read", nanos, off, len, len, 1, machine));
            }
            return ret;
        } finally {
            buf.close();
        }
    }

    private int write(String[] argv, boolean aio) throws CliException, UsageError {
        String cmd = argv[0];
        GetOpt g = new GetOpt(cmd, argv, 1, aio ? "CfiP:quz" : "bcCfnpP:quz", Map.of());
        boolean machine = false, quiet = false, zero = false, unmap = false, fua = false, noFallback = false, pflag = false;
        int pattern = 0xcd;
        for (String o; (o = g.next()) != null; ) {
            switch (o) {
                case "C" -> machine = true;
                case "q" -> quiet = true;
                case "P" -> { pattern = parsePattern(g.optarg()); pflag = true; }
                case "z" -> zero = true;
                case "u" -> unmap = true;
                case "f" -> fua = true;
                case "n" -> noFallback = true;
                case "p", "i" -> { /* ignored, as in qemu-io */ }
                case "b" -> throw new UsageError("-b (VM state) is not supported by vblk io");
                case "c" -> throw new UsageError("-c (compressed writes) is not supported by vblk io");
                default -> throw new IllegalStateException(o);
            }
        }
        if (zero && pflag) throw new UsageError("Only one of -z, -P, and -s can be specified at the same time");
        if (unmap && !zero) throw new UsageError("-u requires -z to be specified");
        if (noFallback && !zero) throw new UsageError("-n requires -z to be specified");
        long[] ol = offLen(cmd, g.operands());
        long off = ol[0], len = ol[1];
        int flags = (fua ? RequestFlags.FUA : 0) | (unmap ? RequestFlags.MAY_UNMAP : 0) | (noFallback ? RequestFlags.NO_FALLBACK : 0);
        NativeBuffer buf = zero ? null : NativeBuffer.allocate(Math.max(len, 1), 4096);
        if (buf != null) buf.fill(0, buf.size(), (byte) pattern);
        IoVector qiov = buf == null ? null : buf.asIoVector(0, len);
        final boolean fZero = zero, fQuiet = quiet, fMachine = machine;
        java.util.function.IntSupplier op = () -> checked(off, len, () -> fZero ? img.node().pwriteZeroes(off, len, flags)
                : img.node().pwritev(off, len, qiov, flags));
        if (aio) {
            startAio(() -> {
                long t0 = System.nanoTime();
                int r = op.getAsInt();
                finishWrite("aio_write", r, System.nanoTime() - t0, buf, off, len, fQuiet, fMachine);
            });
            return 0;
        }
        long t0 = System.nanoTime();
        int r = img.ctx().run(op);
        return finishWrite("write", r, System.nanoTime() - t0, buf, off, len, quiet, machine);
    }

    private int finishWrite(String cmd, int r, long nanos, NativeBuffer buf, long off, long len, boolean quiet, boolean machine) {
        if (buf != null) buf.close();
        if (r < 0) {
            println(cmd + " failed: " + Strerror.of(-r));
            return r;
        }
        if (!quiet) println(QemuIoFormat.report("wrote", nanos, off, len, len, 1, machine));
        return 0;
    }

    private int discard(String[] argv) throws CliException, UsageError {
        GetOpt g = new GetOpt(argv[0], argv, 1, "Cq", Map.of());
        boolean machine = false, quiet = false;
        for (String o; (o = g.next()) != null; ) {
            if (o.equals("C")) machine = true;
            else quiet = true;
        }
        long[] ol = offLen(argv[0], g.operands());
        long t0 = System.nanoTime();
        int r = img.ctx().run(() -> checked(ol[0], ol[1], () -> img.node().pdiscard(ol[0], ol[1])));
        long t = System.nanoTime() - t0;
        if (r < 0) {
            println("discard failed: " + Strerror.of(-r));
            return r;
        }
        if (!quiet) println(QemuIoFormat.report("discard", t, ol[0], ol[1], ol[1], 1, machine));
        return 0;
    }

    /** Runs {@code op} when the range is inside the image, else fails with EIO as a BlockBackend does. */
    private int checked(long off, long len, java.util.function.IntSupplier op) {
        int r = BackendRange.check(imageLength, off, len);
        return r < 0 ? r : op.getAsInt();
    }

    /** Starts an aio_* request as its own coroutine on the image's I/O thread (blk_aio_*). */
    private void startAio(Runnable body) {
        synchronized (aioLock) {
            aioPending++;
        }
        img.ctx().spawn(() -> {
            try {
                body.run();
            } finally {
                synchronized (aioLock) {
                    aioPending--;
                    aioLock.notifyAll();
                }
            }
        });
    }

    /** aio_flush: waits until every aio_* request has completed (blk_drain_all). */
    void waitForAio() {
        synchronized (aioLock) {
            while (aioPending > 0) {
                try {
                    aioLock.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private void println(String s) {
        out.println(s);
        out.flush();
    }
}
