package io.vblk.cli;

import io.vblk.aio.IoThreads;
import io.vblk.block.AioContext;
import io.vblk.block.BlockDrivers;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.CacheMode;
import io.vblk.block.Errno;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.vhost.VhostUserBlkBackend;
import io.vblk.virtio.vhost.VhostUserServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.function.Consumer;

/**
 * {@code vblk serve}: a vhost-user-blk backend process, like {@code qemu-storage-daemon --export
 * type=vhost-user-blk}. Opens the image, builds a virtio-blk device on one I/O thread and serves
 * one front-end at a time on a unix socket until SIGTERM or SIGINT, then stops the rings (draining
 * requests in flight), flushes, closes the image and removes the socket.
 */
public final class ServeCommand {
    private ServeCommand() {}

    static final String USAGE = """
            usage: vblk serve [-f fmt] --socket PATH [--num-queues N] [--read-only] [--serial S]
                              [--logical-block-size N] [--poll-max-ns NS] [--irq-coalesce-ns NS]
                              [--irq-coalesce-max N] [--kick-hold-ns NS] [--kick-hold-depth N]
                              [-t cache] FILE
            Serves FILE as a vhost-user-blk device on the unix socket PATH (exits on SIGTERM/SIGINT).
              -f fmt                  raw or qcow2 (default: probe the file)
              -t cache                none, writeback (default), writethrough, directsync, unsafe
              --num-queues N          request queues (default 1)
              --read-only             export read-only
              --serial S              serial number reported to the guest (at most 20 bytes)
              --logical-block-size N  512 (default) or 4096
              --poll-max-ns NS        longest busy-poll of the rings and completions before the
                                      I/O thread sleeps (QEMU's iothread poll-max-ns; default
                                      32768, 0 = never poll)
              --irq-coalesce-ns NS    hold a queue's interrupt up to NS while other requests are
                                      in flight (default 0: signal every batch, as QEMU)
              --irq-coalesce-max N    completions that end that wait early (default 32)
              --kick-hold-ns NS       while a queue has requests in flight, ask the guest not to
                                      kick and look at the ring at each completion, for at most
                                      NS at a time (default 0: kicks as QEMU)
              --kick-hold-depth N     hold kicks only while at least N requests are in flight
                                      (default 1)""";

    /** Entry point for running the backend without the CLI dispatcher (tests start it as a process). */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    public static int run(String[] args, PrintStream out, PrintStream err) {
        String socket = null, fmt = null, cache = "writeback", file = null;
        VirtioBlkConfig cfg = new VirtioBlkConfig();
        long pollMaxNs = AioContext.IOTHREAD_POLL_MAX_NS;
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                String inline = null;   // --opt=value
                if (a.startsWith("--") && a.indexOf('=') > 0) {
                    inline = a.substring(a.indexOf('=') + 1);
                    a = a.substring(0, a.indexOf('='));
                }
                if (a.equals("-h") || a.equals("--help")) { out.println(USAGE); return 0; }
                if (a.equals("--read-only")) { cfg.readOnly = true; continue; }
                if (!a.startsWith("-")) {
                    if (file != null) throw new IllegalArgumentException("unexpected argument '" + a + "'");
                    file = a;
                    continue;
                }
                String v = inline != null ? inline : value(args, ++i, a);
                switch (a) {
                    case "--socket" -> socket = v;
                    case "--num-queues" -> cfg.numQueues = Integer.parseInt(v);
                    case "--serial" -> cfg.serial = v;
                    case "--logical-block-size" -> cfg.logicalBlockSize = Integer.parseInt(v);
                    case "--poll-max-ns" -> pollMaxNs = Long.parseLong(v);
                    case "--irq-coalesce-ns" -> cfg.irqCoalesceNs = Long.parseLong(v);
                    case "--irq-coalesce-max" -> cfg.irqCoalesceMax = Integer.parseInt(v);
                    case "--kick-hold-ns" -> cfg.kickHoldNs = Long.parseLong(v);
                    case "--kick-hold-depth" -> cfg.kickHoldDepth = Integer.parseInt(v);
                    case "-f" -> fmt = v;
                    case "-t" -> cache = v;
                    default -> throw new IllegalArgumentException("unexpected argument '" + a + "'");
                }
            }
        } catch (IllegalArgumentException e) {
            err.println("vblk serve: " + e.getMessage());
            err.println(USAGE);
            return 1;
        }
        if (socket == null || file == null) {
            err.println("vblk serve: " + (socket == null ? "--socket is required" : "FILE is required"));
            err.println(USAGE);
            return 1;
        }
        int lbs = cfg.logicalBlockSize;
        if (cfg.numQueues < 1 || cfg.numQueues > 64) { err.println("vblk serve: --num-queues must be 1..64"); return 1; }
        if (lbs != 512 && lbs != 4096) { err.println("vblk serve: --logical-block-size must be 512 or 4096"); return 1; }
        if (cfg.serial.length() > 20) { err.println("vblk serve: --serial is longer than 20 bytes"); return 1; }
        if (pollMaxNs < 0) { err.println("vblk serve: --poll-max-ns must not be negative"); return 1; }
        if (cfg.irqCoalesceNs < 0) { err.println("vblk serve: --irq-coalesce-ns must not be negative"); return 1; }
        if (cfg.irqCoalesceMax < 1) { err.println("vblk serve: --irq-coalesce-max must be at least 1"); return 1; }
        if (cfg.kickHoldNs < 0) { err.println("vblk serve: --kick-hold-ns must not be negative"); return 1; }
        if (cfg.kickHoldDepth < 1) { err.println("vblk serve: --kick-hold-depth must be at least 1"); return 1; }
        cfg.physicalBlockSize = Math.max(lbs, cfg.physicalBlockSize);
        try {
            return serve(Path.of(socket), Path.of(file), fmt, cache, cfg, pollMaxNs, err);
        } catch (Exception e) {
            err.println("vblk serve: " + e.getMessage());
            return 1;
        }
    }

    private static String value(String[] args, int i, String opt) {
        if (i >= args.length) throw new IllegalArgumentException("option " + opt + " needs a value");
        return args[i];
    }

    static String probe(Path file) throws IOException {
        byte[] m = new byte[4];
        try (InputStream in = Files.newInputStream(file)) {
            int n = in.readNBytes(m, 0, 4);
            return n == 4 && m[0] == 'Q' && m[1] == 'F' && m[2] == 'I' && (m[3] & 0xff) == 0xfb ? "qcow2" : "raw";
        }
    }

    private static int serve(Path socket, Path file, String fmt, String cacheName, VirtioBlkConfig cfg, long pollMaxNs,
                             PrintStream err) throws Exception {
        boolean ro = cfg.readOnly;
        int queues = cfg.numQueues;
        DateTimeFormatter tf = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");
        Consumer<String> log = s -> err.println(LocalTime.now().format(tf) + " " + s);
        if (!Files.exists(file)) throw new IOException("Could not open '" + file + "': No such file or directory");
        if (fmt == null) fmt = probe(file);
        if (!fmt.equals("raw") && !fmt.equals("qcow2")) throw new BlockException(Errno.EINVAL, "unknown format '" + fmt + "'");
        if (fmt.equals("qcow2") && !BlockDrivers.has("qcow2")) throw new BlockException(Errno.ENOTSUP, "the qcow2 driver is not in this build");
        removeStaleSocket(socket);
        CacheMode cache = CacheMode.parse(cacheName);
        String aio = cache.direct ? "native" : "threads";
        String common = ",cache.direct=" + (cache.direct ? "on" : "off") + ",cache.no-flush=" + (cache.noFlush ? "on" : "off")
                + ",write-cache=" + (cache.writeback ? "on" : "off") + ",read-only=" + (ro ? "on" : "off");
        String opts = fmt.equals("raw")
                ? "driver=file,filename=" + file + ",aio=" + aio + common
                : "driver=qcow2,file.driver=file,file.filename=" + file + ",file.aio=" + aio + common;

        AioContext ctx = IoThreads.start("vblk-serve-io");
        ctx.setPollParams(pollMaxNs, 0, 0);
        BlockNode node = null;
        VhostUserServer server = null;
        VirtioBlkDevice dev = null;
        CountDownLatch stop = new CountDownLatch(1);
        try {
            node = ImageOpener.openOn(ctx, BlockOptions.parse(opts));   // drivers attach per-thread state
            dev = new VirtioBlkDevice(node, cfg, new AioContext[] {ctx});
            log.accept("vblk serve: " + file + " (" + fmt + ", " + node.getLength() + " bytes, cache " + cacheName
                    + (ro ? ", read-only" : "") + ", " + queues + " queue" + (queues > 1 ? "s" : "") + ")");
            installSignals(stop, log);
            server = VhostUserServer.start(socket, new VhostUserBlkBackend(dev, log), log);
            stop.await();
            VirtioBlkDevice.Stats st = dev.stats();
            log.accept("vblk serve: shutting down (" + st.requests() + " requests, "
                    + String.format(Locale.ROOT, "%.1f", dev.meanDepthAtPop()) + " in flight at a pop on average, "
                    + st.kicks() + " queue passes of which "
                    + dev.polledPasses() + " found by polling and " + dev.heldPasses() + " at completions with kicks held, "
                    + st.interrupts() + " interrupts, "
                    + dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.READ) / 1000 + " us mean pop-to-completion of reads, "
                    + dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.WRITE) / 1000 + " us of writes)");
            return 0;
        } finally {
            if (server != null) server.close();      // stops rings (drains), removes the socket
            if (dev != null) dev.reset();
            int rc = 0;
            if (node != null) {
                BlockNode n = node;
                if (!n.isReadOnly()) {
                    rc = ctx.run(n::flush);
                    if (rc < 0) log.accept("vblk serve: flush failed: " + Errno.describe(-rc));
                }
                int c = ctx.run(n::close);
                if (c < 0) log.accept("vblk serve: closing the image failed: " + Errno.describe(-c));
            }
            ctx.close();
            log.accept("vblk serve: image closed");
        }
    }

    /**
     * A socket file left by a backend that was killed (no one listening: ECONNREFUSED) is removed,
     * so a restarted backend can take over the path QEMU reconnects to; a live one is an error.
     */
    static void removeStaleSocket(Path socket) throws IOException {
        if (!Files.exists(socket, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        int mode = (Integer) Files.getAttribute(socket, "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
        if ((mode & 0170000) != 0140000) throw new IOException("socket path " + socket + " exists and is not a socket");
        try {
            io.vblk.virtio.vhost.UnixSocket.connect(socket).close();
            throw new IOException("socket " + socket + " is in use by another backend");
        } catch (BlockException e) {
            if (e.errno() != Errno.ECONNREFUSED) throw new IOException("socket path " + socket + " exists and is not a stale socket: " + e.getMessage());
            Files.delete(socket);
        }
    }

    @SuppressWarnings("removal")
    private static void installSignals(CountDownLatch stop, Consumer<String> log) {
        for (String name : new String[] {"TERM", "INT"}) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(name), s -> {
                    log.accept("vblk serve: SIG" + s.getName() + " received");
                    stop.countDown();
                });
            } catch (IllegalArgumentException e) {
                log.accept("vblk serve: cannot handle SIG" + name + ": " + e.getMessage());
            }
        }
    }
}
