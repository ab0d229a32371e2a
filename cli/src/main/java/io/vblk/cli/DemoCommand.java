package io.vblk.cli;

import io.vblk.aio.AioStats;
import io.vblk.aio.IoThreads;
import io.vblk.aio.LinuxAio;
import io.vblk.block.AioContext;
import io.vblk.block.BlockDrivers;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Sizes;
import io.vblk.qcow2.Qcow2Creator;
import io.vblk.qcow2.check.CheckFile;
import io.vblk.qcow2.check.CheckResult;
import io.vblk.qcow2.check.Qcow2Check;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.demo.VirtioWorkload;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.memory.GuestMemory;

import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * {@code vblk demo}: the whole stack on its embedded default. Creates an image in a temp dir, runs
 * a mixed workload through the in-process guest driver -> virtqueue -> virtio-blk -> block layer ->
 * format -> file -> Linux AIO (O_DIRECT), verifies every byte, checks the image, and prints IOPS,
 * latency percentiles and the io_submit batch size. Ends well under a minute.
 */
public final class DemoCommand {
    private DemoCommand() {}

    /** The stacks the demo can run on, best first. */
    enum Stack {
        QCOW2("qcow2 -> file (Linux AIO, O_DIRECT)", "demo.qcow2",
                "driver=qcow2,file.driver=file,file.filename=%s,file.aio=native,cache.direct=on"),
        RAW_FILE("raw file (Linux AIO, O_DIRECT)", "demo.raw", "driver=file,filename=%s,aio=native,cache.direct=on"),
        MEMORY("memory node (no file, no AIO)", null, "driver=memory,size=%d");

        final String label, fileName, options;

        Stack(String label, String fileName, String options) {
            this.label = label;
            this.fileName = fileName;
            this.options = options;
        }
    }

    static final String USAGE = """
            usage: vblk demo [-s SIZE] [-t SECONDS] [-d DEPTH] [--memory] [--keep] [DIR]
            Runs a verified mixed workload through guest driver -> virtio-blk -> block layer ->
            qcow2 -> file -> Linux AIO (O_DIRECT) on an image in a temp dir (or DIR).
              -s SIZE     virtual disk size (default 256M)
              -t SECONDS  workload duration (default 5)
              -d DEPTH    queue depth (default 32)
              --memory    use a memory node instead of a file
              --keep      keep the image and its directory
            """;

    public static int run(String[] args, PrintStream out, PrintStream err) {
        long size = 256L << 20;
        double seconds = 5;
        int depth = 32;
        boolean memoryOnly = false, keep = false;
        String dirArg = null;
        try {
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "-h", "--help" -> { out.print(USAGE); return 0; }
                    case "-s", "--size" -> size = Sizes.parse(args[++i]);
                    case "-t", "--seconds" -> seconds = Double.parseDouble(args[++i]);
                    case "-d", "--depth" -> depth = Integer.parseInt(args[++i]);
                    case "--memory" -> memoryOnly = true;
                    case "--keep" -> keep = true;
                    default -> {
                        if (args[i].startsWith("-") || dirArg != null) {
                            err.println("vblk demo: unknown argument '" + args[i] + "'");
                            err.print(USAGE);
                            return 1;
                        }
                        dirArg = args[i];
                    }
                }
            }
        } catch (RuntimeException e) {
            err.println("vblk demo: " + (e instanceof ArrayIndexOutOfBoundsException ? "missing value for the last option" : e.getMessage()));
            return 1;
        }
        if (size < (1 << 20) || size % 65536 != 0 || depth < 1 || depth > 256 || !(seconds > 0 && seconds <= 50)) {
            err.println("vblk demo: need SIZE >= 1M and a multiple of 64k, 1 <= DEPTH <= 256, 0 < SECONDS <= 50");
            return 1;
        }
        try {
            return demo(size, seconds, depth, memoryOnly, keep, dirArg, out, err);
        } catch (Exception e) {
            err.println("vblk demo: " + e.getMessage());
            return 1;
        }
    }

    private static int demo(long size, double seconds, int depth, boolean memoryOnly, boolean keep, String dirArg,
                            PrintStream out, PrintStream err) throws Exception {
        Path dir = dirArg != null ? Files.createDirectories(Path.of(dirArg)) : Files.createTempDirectory("vblk-demo");
        AioContext ctx = IoThreads.start("demo-io");
        BlockNode node = null;
        Stack stack = null;
        Path image = null;
        try {
            // Choose the stack: qcow2 when the driver is in this build, else a raw file; a memory node
            // only when O_DIRECT files cannot be used here (e.g. tmpfs) or --memory was given.
            Stack[] order = memoryOnly ? new Stack[] {Stack.MEMORY}
                    : BlockDrivers.has("qcow2") ? new Stack[] {Stack.QCOW2, Stack.RAW_FILE, Stack.MEMORY}
                    : new Stack[] {Stack.RAW_FILE, Stack.MEMORY};
            if (!memoryOnly && !BlockDrivers.has("qcow2")) {
                out.println("note: the qcow2 driver is not in this build yet; the demo runs on a raw file instead");
            }
            for (Stack s : order) {
                try {
                    Path p = s.fileName == null ? null : dir.resolve(s.fileName);
                    createImage(s, p, size, ctx);
                    String opts = s.fileName == null ? String.format(s.options, size) : String.format(s.options, p);
                    node = openOn(ctx, opts);
                    stack = s;
                    image = p;
                    break;
                } catch (IOException | RuntimeException e) {
                    out.println("note: cannot use " + s.label + ": " + e.getMessage() + "; trying the next stack");
                }
            }
            if (node == null) throw new IOException("no usable block stack");
            out.printf("vblk demo: %s virtio-blk disk, %s%s%n", Sizes.human(size), stack.label,
                    image != null ? " at " + image : "");
            out.printf("guest driver -> virtqueue (256, EVENT_IDX, indirect) -> virtio-blk -> block layer -> %s%n", stack.label);

            int ret;
            try (GuestMemory mem = GuestMemory.memfd(64L << 20)) {
                VirtioBlkDevice dev = new VirtioBlkDevice(node, new VirtioBlkConfig().serial("vblk-demo"), new AioContext[] {ctx});
                GuestDriver drv = new GuestDriver(dev, mem, 0, 64L << 20);
                drv.initialize(256);
                VirtioWorkload w = new VirtioWorkload(drv, drv.queue(0), size, depth, System.nanoTime());
                AioStats before = aioStats(ctx, stack);
                out.printf("running a mixed workload for %.0f s: 4k..64k random, 60%% reads, 38%% writes, 2%% flushes, queue depth %d%n", seconds, depth);
                VirtioWorkload.Result r = w.run((long) (seconds * 1e9), 60, (t, ops, bad) ->
                        out.printf("  %5.1f s  %,10d requests  %,9.0f IOPS  %s%n", t, ops, ops / t, bad == 0 ? "verified" : bad + " BAD BYTES"));
                AioStats after = aioStats(ctx, stack);
                out.printf("workload: %,d requests in %.1f s: %,.0f IOPS (%,d reads, %,d writes, %,d flushes), %.1f MiB/s%n",
                        r.ops, r.seconds, r.iops(), r.reads, r.writes, r.flushes, (r.bytesRead + r.bytesWritten) / r.seconds / (1 << 20));
                out.printf("latency: p50 %.0f us, p99 %.0f us%n", r.latencyUs(0.50), r.latencyUs(0.99));
                VirtioBlkDevice.Stats ds = dev.stats();
                if (before != null && after != null) {
                    long calls = after.ioSubmitCalls - before.ioSubmitCalls, iocbs = after.iocbsSubmitted - before.iocbsSubmitted;
                    out.printf("io_submit: %,d calls, %,d iocbs, %.1f iocbs per call (device merged %,d requests)%n",
                            calls, iocbs, calls == 0 ? 0.0 : (double) iocbs / calls, ds.merged());
                } else {
                    out.printf("io_submit: n/a on a memory node (device merged %,d requests in %,d kicks)%n", ds.merged(), ds.kicks());
                }
                out.println("verifying: reading the whole disk back through virtio ...");
                VirtioWorkload.Result v = w.verifyAll();
                long bad = r.mismatches + v.mismatches;
                long errors = r.errors + v.errors;
                out.printf("verified %s read back in %.2f s: %s%n", Sizes.human(v.bytesRead), v.seconds,
                        bad == 0 && errors == 0 ? "every byte matches what was written" : bad + " bytes differ, " + errors + " requests failed");
                dev.reset();
                ret = bad == 0 && errors == 0 ? 0 : 1;
            }
            BlockNode n = node;
            node = null;
            int rc = ctx.run(n::close);
            if (rc < 0) {
                err.println("vblk demo: closing the image failed: " + io.vblk.block.Errno.describe(-rc));
                ret = 1;
            }
            if (stack == Stack.QCOW2) ret |= checkImage(image, ctx, out, err);
            else if (stack == Stack.RAW_FILE) out.println("image check: a raw file has no metadata to check; every byte was verified above.");
            return ret;
        } finally {
            if (node != null) {
                BlockNode n = node;
                ctx.run(n::close);
            }
            ctx.close();
            if (!keep && dirArg == null) deleteTree(dir);
            else if (keep) out.println("kept " + dir);
        }
    }

    /** Opens a node in a coroutine on {@code ctx}, so the drivers' I/O during open goes through Linux AIO too. */
    private static BlockNode openOn(AioContext ctx, String options) throws IOException {
        BlockNode[] node = new BlockNode[1];
        IOException[] err = new IOException[1];
        ctx.run(() -> {
            try {
                node[0] = BlockNode.open(BlockOptions.parse(options));
            } catch (IOException e) {
                err[0] = e;
            }
            return 0;
        });
        if (err[0] != null) throw err[0];
        return node[0];
    }

    private static final String FILE_OPTS = "driver=file,filename=%s,aio=native,cache.direct=on";

    /** Creates an empty image for {@code s}: a sparse raw file, or a qcow2 image written by vblk's creator. */
    private static void createImage(Stack s, Path p, long size, AioContext ctx) throws IOException {
        if (s == Stack.MEMORY) return;
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(s == Stack.RAW_FILE ? size : 0);
        }
        if (s == Stack.QCOW2) {
            BlockNode file = openOn(ctx, String.format(FILE_OPTS, p));
            String[] err = new String[1];
            ctx.run(() -> {
                try {
                    Qcow2Creator.create(file, new Qcow2Creator.Options().size(size));
                    return 0;
                } catch (IOException e) {
                    err[0] = e.getMessage();
                    return -1;
                } finally {
                    file.close();
                }
            });
            if (err[0] != null) throw new IOException("creating the qcow2 image: " + err[0]);
        }
    }

    /** vblk's own qcow2 consistency check on the closed image; prints qemu-img check's summary. */
    private static int checkImage(Path image, AioContext ctx, PrintStream out, PrintStream err) {
        try {
            BlockNode file = openOn(ctx, String.format(FILE_OPTS, image) + ",read-only=on");
            CheckResult[] res = new CheckResult[1];
            String[] msg = new String[1];
            ctx.run(() -> {
                try {
                    res[0] = Qcow2Check.check(CheckFile.of(file), out);
                    return 0;
                } catch (IOException e) {
                    msg[0] = e.getMessage();
                    return -1;
                } finally {
                    file.close();
                }
            });
            if (res[0] == null) {
                err.println("vblk demo: checking the image failed: " + msg[0]);
                return 1;
            }
            CheckResult r = res[0];
            if (r.exitCode() == 0) {
                out.println("No errors were found on the image.");
            } else {
                out.printf("image check: %d errors, %d corruptions, %d leaked clusters%n", r.checkErrors, r.corruptions, r.leaks);
            }
            out.printf("%d/%d = %.2f%% allocated, image end offset: %d%n", r.allocatedClusters, r.totalClusters,
                    r.totalClusters == 0 ? 0.0 : 100.0 * r.allocatedClusters / r.totalClusters, r.imageEndOffset);
            return r.exitCode() == 0 ? 0 : 1;
        } catch (IOException e) {
            err.println("vblk demo: cannot check the image: " + e.getMessage());
            return 1;
        }
    }

    private static AioStats aioStats(AioContext ctx, Stack stack) {
        if (stack == Stack.MEMORY) return null;
        AioStats[] s = new AioStats[1];
        ctx.runOnThread(() -> s[0] = LinuxAio.of(ctx).stats().snapshot());
        return s[0];
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException ignored) {
            // best effort: a temp dir
        }
    }
}
