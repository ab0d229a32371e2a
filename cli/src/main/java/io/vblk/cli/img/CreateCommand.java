package io.vblk.cli.img;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import io.vblk.block.PreallocMode;
import io.vblk.cli.img.ImgSupport.Args;
import io.vblk.cli.img.ImgSupport.UsageException;
import io.vblk.qcow2.Qcow2Creator;
import io.vblk.qcow2.Qcow2Header;
import io.vblk.qcow2.check.Qcow2Check;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * {@code vblk create [-f fmt] [-o opts] [-b backing -F backing_fmt] [-q] FILE [SIZE]}: qemu-img
 * create (img_create, bdrv_img_create) for raw and qcow2, with qemu's "Formatting ..." line.
 * qcow2 options: compat=0.10|1.1|v2|v3, cluster_size, lazy_refcounts, refcount_bits,
 * preallocation=off|metadata|falloc|full, backing_file, backing_fmt; raw: preallocation=off|falloc|full.
 * Without SIZE the size is the backing file's virtual size. qcow2 layout is written by
 * {@link Qcow2Creator} (metadata preallocation included); falloc then fallocates the file, full
 * writes zeros over every preallocated data cluster (with progress on a terminal). Exit 0, or 1.
 */
public final class CreateCommand {
    private CreateCommand() {}

    static final String USAGE = "usage: vblk create [-f fmt] [-o opts] [-b backing -F backing_fmt] [-q] FILE [SIZE]";
    private static final Set<String> QCOW2_OPTS = Set.of("compat", "cluster_size", "lazy_refcounts", "refcount_bits",
            "preallocation", "backing_file", "backing_fmt", "size", "extended_l2", "compression_type");
    private static final Set<String> RAW_OPTS = Set.of("preallocation", "size");

    public static int run(String[] args, PrintStream out, PrintStream err) {
        Args a;
        try {
            a = ImgSupport.parse(args, "fobF", "qhu", Set.of("object"), Set.of("help"));
            if (a.has("-h") || a.has("--help")) {
                out.println(USAGE);
                return 0;
            }
            if (a.positional.isEmpty() || a.positional.size() > 2) throw new UsageException("Expecting image file name");
        } catch (UsageException e) {
            err.println("vblk: " + e.getMessage());
            err.println(USAGE);
            return 1;
        }
        String filename = a.positional.get(0);
        String fmt = a.get("-f") == null ? "raw" : a.get("-f");
        boolean quiet = a.has("-q");
        try {
            return create(a, filename, fmt, quiet, out, err);
        } catch (UsageException e) {
            err.println("vblk: " + filename + ": " + e.getMessage());
            return 1;
        }
    }

    private static int create(Args a, String filename, String fmt, boolean quiet, PrintStream out, PrintStream err) throws UsageException {
        if (!fmt.equals("qcow2") && !fmt.equals("raw")) {
            err.println("vblk: Unknown file format '" + fmt + "'");
            return 1;
        }
        Map<String, String> o = new LinkedHashMap<>();
        String optStr = a.get("-o");
        if (optStr != null) {
            for (String kv : optStr.split(",")) {
                if (kv.isEmpty()) continue;
                int eq = kv.indexOf('=');
                String k = eq < 0 ? kv : kv.substring(0, eq);
                String v = eq < 0 ? "on" : kv.substring(eq + 1);
                if (!(fmt.equals("qcow2") ? QCOW2_OPTS : RAW_OPTS).contains(k)) {
                    throw new UsageException("Invalid parameter '" + k + "' for file format '" + fmt + "'");
                }
                o.put(k, v);
            }
        }
        if (a.has("-b")) o.put("backing_file", a.get("-b"));
        if (a.has("-F")) o.put("backing_fmt", a.get("-F"));
        long size = -1;
        if (a.positional.size() == 2) {
            size = ImgSupport.parseSize(a.positional.get(1));
            if (size < 0) {
                err.println("vblk: Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
                err.println("vblk: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
                return 1;
            }
        } else if (o.containsKey("size")) {
            size = ImgSupport.parseSize(o.get("size"));
            if (size < 0) throw new UsageException("Parameter 'size' expects a non-negative number below 2^64");
        }
        String prealloc = o.getOrDefault("preallocation", "off");
        PreallocMode mode = switch (prealloc) {
            case "off" -> PreallocMode.OFF;
            case "metadata" -> PreallocMode.METADATA;
            case "falloc" -> PreallocMode.FALLOC;
            case "full" -> PreallocMode.FULL;
            default -> throw new UsageException("Parameter 'preallocation' does not accept value '" + prealloc + "'");
        };
        if (fmt.equals("raw")) {
            if (mode == PreallocMode.METADATA) throw new UsageException("Unsupported preallocation mode 'metadata'");
            if (size < 0) throw new UsageException("Image creation needs a size parameter");
            if (!quiet) out.println("Formatting '" + filename + "', fmt=raw size=" + size + (o.containsKey("preallocation") ? " preallocation=" + prealloc : ""));
            return createRaw(filename, size, mode, quiet, out, err);
        }

        // qcow2
        Qcow2Creator.Options co = new Qcow2Creator.Options();
        String compat = o.get("compat");
        if (compat != null) {
            co.version = switch (compat) {
                case "0.10", "v2" -> 2;
                case "1.1", "v3" -> 3;
                default -> throw new UsageException("Parameter 'version' does not accept value '" + compat + "'");
            };
        }
        long cluster = o.containsKey("cluster_size") ? ImgSupport.parseSize(o.get("cluster_size")) : 65536;
        if (cluster < 0 || cluster > Integer.MAX_VALUE) throw new UsageException("Parameter 'cluster_size' expects a size");
        co.clusterSize = (int) cluster;
        co.lazyRefcounts = bool(o, "lazy_refcounts");
        co.refcountBits = o.containsKey("refcount_bits") ? intOpt(o, "refcount_bits") : 16;
        if (bool(o, "extended_l2")) throw new UsageException("Extended L2 entries are not supported by vblk yet");
        if (!o.getOrDefault("compression_type", "zlib").equals("zlib")) {
            throw new UsageException("Compression type '" + o.get("compression_type") + "' is not supported by vblk yet");
        }
        String backing = o.get("backing_file");
        String backingFmt = o.get("backing_fmt");
        if (backing != null && backingFmt == null) throw new UsageException("Backing file specified without backing format");
        if (size < 0 && backing == null) throw new UsageException("Image creation needs a size parameter");
        if (size < 0) {
            size = backingSize(filename, backing, backingFmt, err);
            if (size < 0) return 1;
        }
        if (!quiet) {
            StringBuilder sb = new StringBuilder("Formatting '").append(filename).append("', fmt=qcow2 cluster_size=").append(cluster)
                    .append(" extended_l2=off");
            if (o.containsKey("preallocation")) sb.append(" preallocation=").append(prealloc);
            sb.append(" compression_type=zlib");
            if (size >= 0) sb.append(" size=").append(size);
            if (backing != null) sb.append(" backing_file=").append(backing);
            if (backingFmt != null) sb.append(" backing_fmt=").append(backingFmt);
            if (compat != null) sb.append(" compat=").append(compat);
            sb.append(" lazy_refcounts=").append(co.lazyRefcounts ? "on" : "off");
            sb.append(" refcount_bits=").append(co.refcountBits);
            out.println(sb);
        }
        if (size % 512 != 0) throw new UsageException("Image size must be a multiple of 512 bytes");
        co.size = size;
        if (backing != null) co.backing(backing, backingFmt);
        co.preallocation = mode == PreallocMode.OFF ? PreallocMode.OFF : PreallocMode.METADATA;
        try {
            truncateNew(filename);
        } catch (IOException e) {
            throw new UsageException("Could not create '" + filename + "': " + ioMessage(e));
        }
        AioContext ctx = ImgSupport.startContext();
        BlockNode node = null;
        try {
            node = ImgSupport.openFile(filename, true);
            BlockNode n = node;
            String[] error = {null};
            ctx.run(() -> {
                try {
                    Qcow2Creator.create(n, co);
                    int r = n.flush();
                    if (r < 0) error[0] = "Could not flush: " + Errno.describe(-r);
                } catch (BlockException e) {
                    error[0] = e.getMessage();
                }
                return 0;
            });
            if (error[0] != null) throw new UsageException(error[0]);
        } catch (BlockException e) {
            throw new UsageException(e.getMessage());
        } finally {
            ImgSupport.close(ctx, node);
            ctx.close();
        }
        if (mode == PreallocMode.FALLOC || mode == PreallocMode.FULL) {
            try {
                preallocateData(filename, mode, quiet, out);
            } catch (IOException e) {
                throw new UsageException("Could not preallocate data: " + ioMessage(e));
            }
        }
        return 0;
    }

    private static boolean bool(Map<String, String> o, String k) throws UsageException {
        String v = o.get(k);
        if (v == null || v.equals("off") || v.equals("false")) return false;
        if (v.equals("on") || v.equals("true")) return true;
        throw new UsageException("Parameter '" + k + "' expects 'on' or 'off'");
    }

    private static int intOpt(Map<String, String> o, String k) throws UsageException {
        try {
            return Integer.parseInt(o.get(k));
        } catch (NumberFormatException e) {
            throw new UsageException("Parameter '" + k + "' expects a number");
        }
    }

    private static String ioMessage(IOException e) {
        if (e instanceof java.nio.file.NoSuchFileException) return "No such file or directory";
        if (e instanceof java.nio.file.AccessDeniedException) return "Permission denied";
        return e.getMessage();
    }

    private static void truncateNew(String filename) throws IOException {
        try (FileChannel ch = FileChannel.open(Path.of(filename), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.force(true);
        }
    }

    /** The virtual size of the backing file (resolved relative to the new image's directory). */
    private static long backingSize(String filename, String backing, String backingFmt, PrintStream err) {
        String path = InfoCommand.fullBackingName(filename, backing);
        if (!Files.exists(Path.of(path))) {
            err.println("vblk: " + filename + ": Could not open backing file: Could not open '" + path + "': No such file or directory");
            return -1;
        }
        if (backingFmt.equals("raw")) {
            try {
                return Files.size(Path.of(path));
            } catch (IOException e) {
                err.println("vblk: " + filename + ": Could not open backing file: " + ioMessage(e));
                return -1;
            }
        }
        AioContext ctx = ImgSupport.startContext();
        BlockNode node = null;
        try {
            node = ImgSupport.openFile(path, false);
            return ImgSupport.readWith(ctx, node, f -> Qcow2Check.readHeader(f).size);
        } catch (BlockException e) {
            err.println("vblk: " + filename + ": Could not open backing file: " + e.getMessage());
            return -1;
        } finally {
            ImgSupport.close(ctx, node);
            ctx.close();
        }
    }

    private static int createRaw(String filename, long size, PreallocMode mode, boolean quiet, PrintStream out, PrintStream err) {
        try {
            truncateNew(filename);
            try (FileChannel ch = FileChannel.open(Path.of(filename), StandardOpenOption.WRITE)) {
                switch (mode) {
                    case FALLOC -> fallocate(filename, 0, size);
                    case FULL -> zeroFill(ch, 0, size, size, new long[] {0}, quiet, out);
                    default -> { }
                }
                try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(filename, "rw")) {
                    raf.setLength(size);
                }
                ch.force(true);
            }
            return 0;
        } catch (IOException e) {
            err.println("vblk: " + filename + ": Could not create image: " + ioMessage(e));
            return 1;
        }
    }

    private static void fallocate(String filename, long offset, long len) throws IOException {
        if (len <= 0) return;
        int fd = Native.LIBC.open(filename, Syscalls.O_RDWR, 0);
        if (fd < 0) throw new IOException("open: " + Errno.describe(Native.errno()));
        try {
            if (Native.LIBC.fallocate(fd, 0, offset, len) != 0) {
                throw new IOException("fallocate: " + Errno.describe(Native.errno()));
            }
        } finally {
            Native.LIBC.close(fd);
        }
    }

    private static final int ZERO_CHUNK = 1 << 20;

    /** Writes zeros over [off, off+len), reporting progress against {@code total} on a terminal. */
    private static void zeroFill(FileChannel ch, long off, long len, long total, long[] done, boolean quiet, PrintStream out)
            throws IOException {
        ByteBuffer zeros = ByteBuffer.allocateDirect(ZERO_CHUNK);
        boolean progress = !quiet && System.console() != null && total > 0;
        long end = off + len;
        while (off < end) {
            int n = (int) Math.min(ZERO_CHUNK, end - off);
            zeros.clear().limit(n);
            while (zeros.hasRemaining()) off += ch.write(zeros, off);
            done[0] += n;
            if (progress) out.printf("    (%.2f/100%%)\r", done[0] * 100.0 / total);
        }
        if (progress && done[0] >= total) out.printf("    (100.00/100%%)%n");
    }

    /**
     * falloc: fallocate the whole file (keeps metadata, allocates the reserved data clusters);
     * full: write zeros over every data cluster the metadata preallocation mapped.
     */
    private static void preallocateData(String filename, PreallocMode mode, boolean quiet, PrintStream out) throws IOException {
        if (mode == PreallocMode.FALLOC) {
            fallocate(filename, 0, Files.size(Path.of(filename)));
            return;
        }
        try (FileChannel ch = FileChannel.open(Path.of(filename), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer hb = ByteBuffer.allocate((int) Math.min(ch.size(), 1 << MAX_CLUSTER_BITS));
            ch.read(hb, 0);
            Qcow2Header h;
            try {
                h = Qcow2Header.parse(java.util.Arrays.copyOf(hb.array(), hb.position()));
            } catch (BlockException e) {
                throw new IOException(e.getMessage());
            }
            int cs = h.clusterSize();
            ByteBuffer l1 = ByteBuffer.allocate(h.l1Size * 8).order(ByteOrder.BIG_ENDIAN);
            ch.read(l1, h.l1TableOffset);
            ByteBuffer l2 = ByteBuffer.allocate(cs).order(ByteOrder.BIG_ENDIAN);
            java.util.List<long[]> runs = new java.util.ArrayList<>();
            long total = 0;
            for (int i = 0; i < h.l1Size; i++) {
                long l2Off = l1.getLong(i * 8) & L1E_OFFSET_MASK;
                if (l2Off == 0) continue;
                l2.clear();
                ch.read(l2, l2Off);
                for (int j = 0; j < cs / 8; j++) {
                    long e = l2.getLong(j * 8);
                    long d = e & L2E_OFFSET_MASK;
                    if (d == 0 || (e & QCOW_OFLAG_COMPRESSED) != 0) continue;
                    long[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
                    if (last != null && last[0] + last[1] == d) last[1] += cs;
                    else runs.add(new long[] {d, cs});
                    total += cs;
                }
            }
            long[] done = {0};
            for (long[] r : runs) zeroFill(ch, r[0], r[1], total, done, quiet, out);
            ch.force(true);
        }
    }
}
