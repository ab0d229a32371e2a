package io.vblk.cli;

import io.vblk.aio.AioStats;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.Sizes;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;

/**
 * {@code vblk bench}: qemu-img bench. Sends {@code -c} requests of {@code -s} bytes with {@code -d}
 * of them in flight, sequentially from {@code -o} in steps of {@code -S} (wrapping at the end of
 * the image, as qemu-img does) or at random aligned offsets ({@code --random}). The in-flight
 * requests are {@code depth} coroutines on one I/O thread, each reusing one pre-allocated aligned
 * buffer, so nothing is allocated per request. Prints qemu-img bench's lines, or with
 * {@code --output=json} the figures {@code seconds, ops, iops, mib_per_s, lat_us, cpu_s,
 * io_thread_cpu_s, io_submit_calls, iocbs} (and the batching ratios when Linux AIO is used).
 * {@code io_thread_cpu_s} is the CPU of the one I/O thread that runs the block layer (and, for
 * {@code --path virtio}, the guest driver and the device as well).
 */
public final class BenchCommand {
    static final String USAGE = """
            Usage: vblk bench [-f fmt] [-w] [-c count] [-d depth] [-s size] [-S step] [-o offset] [--random]
                              [-t cache] [-i native|threads] [--path block|aio|virtio] [--pattern=N]
                              [--flush-interval=N [--no-drain]] [--output=human|json] [--image-opts] FILE

            Runs a simple I/O benchmark on FILE (or `-f null SIZE`), as qemu-img bench.
              -c COUNT            number of requests (default 75000)
              -d DEPTH            requests in flight (default 64)
              -s SIZE             bytes per request (default 4096)
              -S STEP             offset increment between requests (default: SIZE)
              -o OFFSET           offset of the first request (default 0)
              -w                  write instead of read;  --pattern=N: byte written (default 0)
              --random            random offsets aligned to SIZE in [OFFSET, image size)
              -t CACHE, -i AIO    cache mode and I/O engine (-t none -i native: O_DIRECT + Linux AIO)
              --path PATH         block (default): through the block layer; aio: Linux AIO engine
                                  alone on the raw file (O_DIRECT); virtio: through the virtio-blk device
              --flush-interval=N  flush after every N requests, once those in flight completed
                                  (writes only; --no-drain: without waiting)
              --poll-max-ns=NS    longest busy-poll of the I/O thread before it sleeps (QEMU's
                                  iothread poll-max-ns; default 32768, 0 = never poll)
              --warmup=N          first run N untimed requests of the same kind, then wait for
                                  them (fio's ramp_time; lets the JIT compile the path)
              --output=json       print seconds, ops, iops, mib_per_s, lat_us {p50,p99,p999}, cpu_s,
                                  io_thread_cpu_s, io_submit_calls, iocbs, iocbs_per_submit,
                                  completions_per_reap, reap_to_submit_us (mean time from a reap
                                  that found completions to the next io_submit)
            Exit status: 0 on success, 1 on any error (as qemu-img).
            """;

    /** What one run does; also what {@code VirtioBenchPath} may read. */
    public record Config(boolean write, long count, int depth, int size, long step, long offset, boolean random,
                         int pattern, long flushInterval, String path, boolean json, boolean drain) {}

    /** What one run measured. */
    public record Result(long nanos, long ops, long bytes, LatencyHistogram lat, long cpuNanos, long ioThreadCpuNanos, AioStats aio, int error) {}

    private BenchCommand() {}

    public static int run(String[] args, PrintStream out, PrintStream err) throws CliException {
        ImageSpec spec = new ImageSpec();
        long count = 75000, offset = 0, step = -1, flushInterval = 0, pollMaxNs = AioContext.IOTHREAD_POLL_MAX_NS, warmup = 0;
        int depth = 64, size = 4096, pattern = 0;
        boolean write = false, random = false, json = false, noDrain = false;
        String path = "block";
        GetOpt g = new GetOpt("", args, 0, "hc:d:f:i:no:qs:S:t:wU",
                Map.ofEntries(Map.entry("help", false), Map.entry("random", false), Map.entry("path", true),
                        Map.entry("output", true), Map.entry("pattern", true), Map.entry("flush-interval", true),
                        Map.entry("no-drain", false), Map.entry("poll-max-ns", true), Map.entry("warmup", true), Map.entry("image-opts", false), Map.entry("force-share", false),
                        Map.entry("format", true), Map.entry("cache", true), Map.entry("aio", true)));
        for (String o; (o = g.next()) != null; ) {
            String a = g.optarg();
            switch (o) {
                case "h", "help" -> {
                    out.print(USAGE);
                    return 0;
                }
                case "c" -> count = parse(a, Integer.MAX_VALUE, "Invalid request count specified", 0);
                case "d" -> depth = (int) parse(a, Integer.MAX_VALUE, "Invalid queue depth specified", 1);
                case "s" -> size = (int) parse(a, Integer.MAX_VALUE, "Invalid buffer size specified. You may use k, M, G, T, P or E suffixes for\n"
                        + "vblk: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.", 1);
                case "S" -> step = parse(a, Integer.MAX_VALUE, "Invalid step size specified", 0);
                case "o" -> offset = parse(a, Long.MAX_VALUE, "Invalid offset specified", 0);
                case "w" -> write = true;
                case "q" -> { /* qemu-img bench prints its lines even with -q */ }
                case "random" -> random = true;
                case "path" -> path = a;
                case "output" -> {
                    if (a.equals("json")) json = true;
                    else if (a.equals("human")) json = false;
                    else throw new CliException("--output must be used with human or json as argument.");
                }
                case "pattern" -> pattern = (int) parse(a, 255, "Invalid pattern byte specified", 0);
                case "flush-interval" -> flushInterval = parse(a, Long.MAX_VALUE, "Invalid flush interval specified", 0);
                case "no-drain" -> noDrain = true;
                case "poll-max-ns" -> pollMaxNs = parse(a, Long.MAX_VALUE / 4, "Invalid --poll-max-ns specified", 0);
                case "warmup" -> warmup = parse(a, Integer.MAX_VALUE, "Invalid --warmup specified", 0);
                default -> {
                    if (!spec.accept(o, a, false)) throw CliException.usage("vblk bench: unhandled option " + o);
                }
            }
        }
        if (g.operands().size() != 1) {
            throw CliException.usage("Expecting one image file name");
        }
        if (flushInterval > 0 && !write) {
            throw new CliException("--flush-interval is only available in write tests");
        }
        if (noDrain && flushInterval == 0) {
            throw new CliException("--no-drain is only available with --flush-interval");
        }
        if (!path.equals("block") && !path.equals("aio") && !path.equals("virtio")) {
            throw new CliException("Invalid --path '" + path + "' (expected block, aio or virtio)");
        }
        spec.filename = g.operands().get(0);
        if (step < 0) step = size;
        Config cfg = new Config(write, count, depth, size, step, offset, random, pattern, flushInterval, path, json, !noDrain);
        BenchPath p;
        try {
            p = openPath(cfg, spec);
        } catch (BlockException e) {
            throw new CliException("Could not open '" + spec.filename + "': " + e.getMessage());
        }
        if (!json) {
            out.println(startLine(cfg));
            out.flush();
        }
        // the bench's I/O thread polls as a QEMU IOThread does (poll-max-ns, default 32768)
        p.context().setPollParams(pollMaxNs, 0, 0);
        Result r;
        try {
            if (random && p.length() < size + offset) {
                throw new CliException("Image too small for --random: " + p.length() + " bytes, requests of " + size + " from offset " + offset);
            }
            r = runBench(cfg, p, warmup);
        } finally {
            p.close();
        }
        if (r.error() < 0) {
            throw new CliException("Failed request: " + Strerror.of(-r.error()));
        }
        out.println(json ? json(cfg, r) : String.format(Locale.ROOT, "Run completed in %.3f seconds.", r.nanos() / 1e9));
        out.flush();
        return 0;
    }

    private static long parse(String s, long max, String msg, long min) throws CliException {
        long v;
        try {
            v = Sizes.parse(s);
        } catch (IllegalArgumentException e) {
            throw new CliException(msg);
        }
        if (v < min || v > max) throw new CliException(msg);
        return v;
    }

    /** qemu-img bench's first line (or ours for --random). */
    static String startLine(Config c) {
        String what = String.format(Locale.ROOT, "Sending %d %s requests, %d bytes each, %d in parallel ",
                c.count(), c.write() ? "write" : "read", c.size(), c.depth());
        if (c.random()) {
            return what + "(random offsets from " + c.offset() + ", aligned to " + c.size() + ")";
        }
        return what + "(starting at offset " + c.offset() + ", step size " + c.step() + ")";
    }

    static BenchPath openPath(Config cfg, ImageSpec spec) throws BlockException, CliException {
        switch (cfg.path()) {
            case "aio" -> {
                AioContext ctx = ImageOpener.startContext("vblk-bench");
                try {
                    return new AioBenchPath(spec, ctx, cfg.write());
                } catch (BlockException | CliException | RuntimeException e) {
                    ctx.close();
                    throw e;
                }
            }
            case "virtio" -> {
                Class<?> c;
                try {
                    c = Class.forName("io.vblk.cli.VirtioBenchPath");
                } catch (ClassNotFoundException e) {
                    throw new CliException("--path virtio is not built in (io.vblk.cli.VirtioBenchPath is missing)");
                }
                AioContext ctx = ImageOpener.startContext("vblk-bench");
                try {
                    return (BenchPath) c.getMethod("open", ImageSpec.class, AioContext.class).invoke(null, spec, ctx);
                } catch (InvocationTargetException e) {
                    ctx.close();
                    if (e.getCause() instanceof BlockException be) throw be;
                    if (e.getCause() instanceof CliException ce) throw ce;
                    throw new CliException("--path virtio: " + e.getCause());
                } catch (ReflectiveOperationException e) {
                    ctx.close();
                    throw new CliException("--path virtio: " + e);
                }
            }
            default -> {
                OpenedImage img = ImageOpener.open(spec, "vblk-bench");
                try {
                    return new BlockBenchPath(img, "native".equals(spec.aio));
                } catch (BlockException | RuntimeException e) {
                    img.close();
                    throw e;
                }
            }
        }
    }

    /** The run itself, on the path's I/O thread; see {@link Runner}. */
    static Result runBench(Config cfg, BenchPath p) {
        return runBench(cfg, p, 0);
    }

    /** The same after {@code warmup} untimed requests (completed before the timed ones start). */
    static Result runBench(Config cfg, BenchPath p, long warmup) {
        return new Runner(cfg, p).run(warmup);
    }

    /**
     * The bench loop (qemu-img's bench_cb): {@code depth} worker coroutines, each with its own
     * buffer, take the next offset and issue one request at a time until {@code count} requests
     * were issued or one failed. All state is touched only on the I/O thread.
     */
    static final class Runner {
        private final Config cfg;
        private final BenchPath path;
        private final long imageSize;
        private final SplittableRandom rng = new SplittableRandom(0x5eed);
        private LatencyHistogram lat = new LatencyHistogram();
        private CountDownLatch done;
        private long limit;          // requests to issue in the current phase (warm-up or timed)
        private long nextOffset;     // I/O thread
        private long issued;         // I/O thread
        private long completed;      // I/O thread
        private int error;           // I/O thread: first failure
        private final long randomSlots;
        private long sinceFlush;     // I/O thread: requests issued since the last flush
        private int inFlight;        // I/O thread
        private boolean flushing;    // I/O thread
        private long flushes;        // I/O thread
        private final Coroutine[] parked;   // I/O thread: workers waiting for a drained flush
        private int nParked;         // I/O thread
        private final Slot[] stalled;       // I/O thread: slots waiting for room in the path
        private int nStalled;        // I/O thread

        Runner(Config cfg, BenchPath path) {
            this.cfg = cfg;
            this.path = path;
            this.imageSize = path.length();
            this.nextOffset = cfg.offset();
            this.randomSlots = cfg.size() == 0 ? 0 : Math.max(0, (imageSize - cfg.offset()) / cfg.size());
            this.parked = new Coroutine[cfg.depth()];
            this.stalled = new Slot[cfg.depth()];
        }

        /** The next request's offset: sequential with wrap-around as qemu-img bench, or random aligned to the size. */
        long nextOffset() {
            if (cfg.random()) {
                return randomSlots <= 0 ? cfg.offset() : cfg.offset() + rng.nextLong(randomSlots) * cfg.size();
            }
            long off = nextOffset;
            nextOffset += cfg.step();
            nextOffset = imageSize == 0 ? 0 : nextOffset % imageSize;
            return off;
        }

        /**
         * Runs {@code warmup} requests (if any) and waits for them, then the timed {@code count}:
         * the same slots and buffers, fresh counters, latencies and clock.
         */
        Result run(long warmup) {
            int depth = (int) Math.min(cfg.depth(), Math.max(1, cfg.count()));
            NativeBuffer[] bufs = new NativeBuffer[depth];
            IoVector[] vecs = new IoVector[depth];
            long[] provided = path.requestBuffers(depth, Math.max(cfg.size(), 1));
            for (int i = 0; i < depth; i++) {
                if (provided != null) { // the path's own memory (virtio: guest RAM), freed by the path
                    NativeMemory.fill(provided[i], Math.max(cfg.size(), 1), (byte) cfg.pattern());
                    vecs[i] = IoVector.of(provided[i], cfg.size());
                    continue;
                }
                bufs[i] = NativeBuffer.allocate(Math.max(cfg.size(), 1), path.bufferAlignment());
                bufs[i].fill(0, bufs[i].size(), (byte) cfg.pattern());
                vecs[i] = bufs[i].asIoVector(0, cfg.size());
            }
            try {
                if (warmup > 0) {
                    phase(vecs, (int) Math.min(depth, warmup), warmup);
                    if (error != 0) {
                        return new Result(0, 0, 0, lat, 0, 0, null, error);
                    }
                    issued = completed = sinceFlush = flushes = 0;
                    lat = new LatencyHistogram();
                }
                return phase(vecs, depth, cfg.count());
            } finally {
                for (NativeBuffer b : bufs) if (b != null) b.close();
            }
        }

        /** One phase: {@code depth} slots issue {@code n} requests in all; returns what it measured. */
        private Result phase(IoVector[] vecs, int depth, long n) {
            limit = n;
            done = new CountDownLatch(depth);
            AioStats before = snapshot();
            long cpu0 = CpuTime.processNanos();
            long ioCpu0 = contextOf().threadCpuNanos();
            long t0 = System.nanoTime();
            AioContext ctx = contextOf();
            // one task on the I/O thread starts every worker (each coroutine runs until its first
            // park), so all of them are in flight before any is resumed
            if (path.canStart() && cfg.flushInterval() == 0) {
                ctx.execute(() -> {
                    for (int i = 0; i < depth; i++) {
                        new Slot(vecs[i]).issue();
                    }
                });
            } else {
                ctx.execute(() -> {
                    for (int i = 0; i < depth; i++) {
                        IoVector v = vecs[i];
                        ctx.spawn(() -> worker(v));
                    }
                });
            }
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            long nanos = System.nanoTime() - t0;
            long cpu = CpuTime.processNanos() - cpu0;
            long ioCpu1 = contextOf().threadCpuNanos();
            long ioCpu = ioCpu0 < 0 || ioCpu1 < 0 ? -1 : ioCpu1 - ioCpu0;
            AioStats after = snapshot();
            return new Result(nanos, completed, completed * cfg.size(), lat, cpu, ioCpu, diff(before, after), error);
        }

        private AioContext contextOf() {
            return path.context();
        }

        /**
         * One in-flight slot. With {@code --flush-interval=N}, after every N issued requests a flush
         * is sent: by default once every request in flight has completed (the others park until
         * the flush is done), with {@code --no-drain} at once while the rest continue, as
         * qemu-img bench does.
         */
        private void worker(IoVector qiov) {
            try {
                boolean write = cfg.write();
                long interval = cfg.flushInterval();
                while (error == 0 && issued < limit) {
                    if (interval > 0 && sinceFlush >= interval) {
                        if (cfg.drain() && (inFlight > 0 || flushing)) {
                            parked[nParked++] = Coroutine.current();
                            Coroutine.park();
                            continue;
                        }
                        sinceFlush = 0;
                        flushing = true;
                        int f = path.flush();
                        flushing = false;
                        flushes++;
                        if (f < 0 && error == 0) error = f;
                        wakeParked();
                        continue;
                    }
                    long off = nextOffset();
                    issued++;
                    sinceFlush++;
                    inFlight++;
                    long t0 = System.nanoTime();
                    int r = path.request(write, off, qiov);
                    lat.record(System.nanoTime() - t0);
                    inFlight--;
                    if (r < 0) {
                        if (error == 0) error = r;
                        break;
                    }
                    completed++;
                }
            } finally {
                wakeParked();
                done.countDown();
            }
        }

        /**
         * One in-flight slot of a path that {@link BenchPath#canStart can start} requests without
         * a coroutine: the same loop as {@link #worker}, driven by the completion. A slot that
         * finds the path full (EAGAIN) waits in {@code stalled} until a completion frees room.
         */
        private final class Slot implements BenchPath.Completion {
            private final IoVector qiov;
            private long t0;

            Slot(IoVector qiov) {
                this.qiov = qiov;
            }

            void issue() {
                if (error != 0 || issued >= limit) {
                    done.countDown();
                    return;
                }
                long off = nextOffset();
                t0 = System.nanoTime();
                int r = path.start(cfg.write(), off, qiov, this);
                if (r == -Errno.EAGAIN && inFlight > 0) {
                    rewindOffset(off);
                    stalled[nStalled++] = this;
                    return;
                }
                issued++;
                if (r < 0) {
                    if (error == 0) error = r;
                    done.countDown();
                    return;
                }
                inFlight++;
            }

            @Override
            public void done(int r) {
                lat.record(System.nanoTime() - t0);
                inFlight--;
                if (r < 0) {
                    if (error == 0) error = r;
                } else {
                    completed++;
                }
                if (nStalled > 0) {
                    Slot s = stalled[--nStalled];
                    stalled[nStalled] = null;
                    s.issue();
                }
                issue();
            }
        }

        /** Gives back an offset a stalled slot took, so that the sequence stays as qemu-img bench's. */
        private void rewindOffset(long off) {
            if (!cfg.random()) {
                nextOffset = off;
            }
        }

        private void wakeParked() {
            while (nParked > 0) {
                Coroutine c = parked[--nParked];
                parked[nParked] = null;
                c.wake();
            }
        }

        /** Flushes sent by --flush-interval (for tests). */
        long flushes() {
            return flushes;
        }

        private AioStats snapshot() {
            AioStats s = path.aioStats();
            if (s == null) return null;
            AioStats[] out = new AioStats[1];
            contextOf().runOnThread(() -> out[0] = s.snapshot());
            return out[0];
        }

        private static AioStats diff(AioStats a, AioStats b) {
            return a == null || b == null ? null : b.minus(a);
        }
    }

    /** The JSON line of --output=json. */
    static String json(Config cfg, Result r) {
        double sec = r.nanos() / 1e9;
        double iops = sec > 0 ? r.ops() / sec : 0;
        double mibps = sec > 0 ? r.bytes() / sec / (1 << 20) : 0;
        StringBuilder sb = new StringBuilder();
        sb.append('{');
        sb.append(String.format(Locale.ROOT, "\"seconds\": %.6f, \"ops\": %d, \"iops\": %.1f, \"mib_per_s\": %.2f, ", sec, r.ops(), iops, mibps));
        sb.append(String.format(Locale.ROOT, "\"lat_us\": {\"p50\": %.2f, \"p99\": %.2f, \"p999\": %.2f}, ",
                r.lat().percentile(0.50) / 1e3, r.lat().percentile(0.99) / 1e3, r.lat().percentile(0.999) / 1e3));
        sb.append(String.format(Locale.ROOT, "\"cpu_s\": %.6f, ", r.cpuNanos() < 0 ? -1.0 : r.cpuNanos() / 1e9));
        sb.append(String.format(Locale.ROOT, "\"io_thread_cpu_s\": %.6f, ", r.ioThreadCpuNanos() < 0 ? -1.0 : r.ioThreadCpuNanos() / 1e9));
        AioStats a = r.aio();
        sb.append("\"io_submit_calls\": ").append(a == null ? 0 : a.ioSubmitCalls);
        sb.append(", \"iocbs\": ").append(a == null ? 0 : a.iocbsSubmitted);
        if (a != null) {
            sb.append(String.format(Locale.ROOT, ", \"iocbs_per_submit\": %.3f, \"completions_per_reap\": %.3f, \"reap_to_submit_us\": %.2f",
                    a.iocbsPerSubmit(), a.completionsPerReap(), a.meanTurnaroundMicros()));
        }
        sb.append(String.format(Locale.ROOT, ", \"rw\": \"%s\", \"bs\": %d, \"depth\": %d, \"path\": \"%s\"",
                cfg.write() ? "write" : "read", cfg.size(), cfg.depth(), cfg.path()));
        sb.append('}');
        return sb.toString();
    }
}
