package io.vblk.nativetests.qcow2proof;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.nativetests.Requirements;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * kill -9 of a {@code vblk io} process in the middle of concurrent writes with periodic flushes.
 *
 * <p>The child is {@code java -cp cli/target/vblk-cli.jar:cli/target/lib/* io.vblk.cli.Main io -t
 * none -i native IMG} (O_DIRECT + Linux AIO, the launcher's JVM flags) reading commands from stdin.
 * The test keeps up to 32 {@code aio_write} commands in flight, never two overlapping ones, and
 * every few writes sends {@code length}, {@code flush}, {@code length}: the first {@code length}
 * line marks the flush's start, the second its completion. It parses the child's qemu-io lines
 * ({@code wrote N/N bytes at offset O}) to know which writes completed, and kills the child with
 * SIGKILL at a random moment. Then: without lazy refcounts {@code qemu-img check} exits 0 or 3;
 * with lazy refcounts {@code qemu-img check -r all} exits 0. Every 512-byte sector must hold the
 * data of the last write that completed before the start of the last completed flush, or of a
 * write to it issued later (those may or may not have reached the disk), never anything else.
 * Write patterns encode the offset and the write's number, so a misplaced write is detected.
 *
 * <p>{@code -Dvblk.qcow2proof.killIterations=N} sets the iterations per mode (default 20).
 */
class Qcow2KillTest {
    static final int SECTOR = 512;
    static final long SIZE = 32L << 20;
    static final int ITERATIONS = Integer.getInteger("vblk.qcow2proof.killIterations", 20);
    static final int PARALLEL = 4;
    static final Pattern WROTE = Pattern.compile("^wrote (\\d+)/\\d+ bytes at offset (\\d+)$");

    @TempDir
    Path dir;

    @BeforeEach
    void needPeers() {
        Qemu.require();
        Requirements.require(Files.isRegularFile(cliJar()) && Files.isDirectory(cliJar().resolveSibling("lib")),
                "the cli jar built by the reactor (mvn verify/package): " + cliJar());
    }

    static Path cliJar() {
        Path here = Path.of(System.getProperty("user.dir")).toAbsolutePath();
        Path root = Files.isDirectory(here.resolve("cli")) ? here : here.getParent();
        return root.resolve("cli/target/vblk-cli.jar");
    }

    @Test
    void killDuringConcurrentWritesWithoutLazyRefcounts() throws Exception {
        runMode(false);
    }

    @Test
    void killDuringConcurrentWritesWithLazyRefcounts() throws Exception {
        runMode(true);
    }

    private void runMode(boolean lazy) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(PARALLEL);
        try {
            List<Future<String>> fs = new ArrayList<>();
            for (int i = 0; i < ITERATIONS; i++) {
                int it = i;
                fs.add(ex.submit(() -> iteration(lazy, it)));
            }
            int flushesSeen = 0;
            for (Future<String> f : fs) {
                String s = f.get(5, TimeUnit.MINUTES);
                System.out.println("kill " + (lazy ? "lazy" : "strict") + ": " + s);
                if (s.contains("flushes=") && !s.contains("flushes=0 ")) flushesSeen++;
            }
            assertTrue(flushesSeen >= ITERATIONS / 2, "most iterations were killed after a completed flush: " + flushesSeen);
        } finally {
            ex.shutdownNow();
        }
    }

    /** One write the child was asked to do. */
    record Write(int id, long off, int len, int pattern, boolean zero) {}

    private String iteration(boolean lazy, int it) throws Exception {
        long seed = System.nanoTime() ^ (it * 7919L) ^ (lazy ? 1 : 0);
        Random r = new Random(seed);
        int cs = r.nextBoolean() ? 65536 : 4096;
        Path img = dir.resolve((lazy ? "lazy" : "strict") + it + ".qcow2");
        Qemu.ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + cs + (lazy ? ",lazy_refcounts=on" : ""), img.toString(),
                String.valueOf(SIZE));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path jar = cliJar();
        List<String> cmd = List.of(java, "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow",
                "--add-exports", "java.base/jdk.internal.vm=ALL-UNNAMED", "-Xss4m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-cp", jar + ":" + jar.resolveSibling("lib") + "/*", "io.vblk.cli.Main", "io", "-t", "none", "-i", "native", img.toString());
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Thread reader = Thread.ofVirtual().start(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String l; (l = in.readLine()) != null; ) lines.add(l);
            } catch (IOException ignored) {
                // the child died
            }
            lines.add("<eof>");
        });
        // model
        List<Write> writes = new ArrayList<>();
        List<Integer> completionOrder = new ArrayList<>();          // write ids in the order of their "wrote" lines
        List<Integer> markerPositions = new ArrayList<>();          // completionOrder.size() at each "length" line
        java.util.Map<Long, Write> inFlight = new java.util.HashMap<>();
        long killAfterNanos = TimeUnit.MILLISECONDS.toNanos(300 + r.nextInt(1500));
        long start = -1;
        int sent = 0;
        boolean eof = false;
        OutputStream stdin = p.getOutputStream();
        int sinceFlush = 0;
        try {
            while (!eof) {
                // drain output
                for (String l; (l = lines.poll()) != null; ) {
                    if (l.equals("<eof>")) {
                        eof = true;
                        break;
                    }
                    Matcher m = WROTE.matcher(l);
                    if (m.matches()) {
                        Write w = inFlight.remove(Long.parseLong(m.group(2)));
                        assertNotNull(w, "completion of a write we sent: " + l);
                        completionOrder.add(w.id());
                        if (start < 0) start = System.nanoTime();
                    } else if (l.endsWith("MiB")) {
                        markerPositions.add(completionOrder.size());
                    } else if (l.contains("failed")) {
                        fail("child reported a failure: " + l);
                    }
                }
                if (eof) break;
                if (start >= 0 && System.nanoTime() - start > killAfterNanos) break;
                StringBuilder batch = new StringBuilder();
                while (inFlight.size() < 32) {
                    int len = SECTOR * (1 + (r.nextInt(4) == 0 ? r.nextInt(256) : r.nextInt(16)));
                    long off = SECTOR * (long) r.nextInt((int) ((SIZE - len) / SECTOR) + 1);
                    if (overlaps(inFlight, off, len)) continue;
                    int id = writes.size();
                    boolean zero = r.nextInt(16) == 0;
                    int pat = zero ? 0 : 1 + (int) (((off / SECTOR) * 131 + id * 7L) % 255);
                    Write w = new Write(id, off, len, pat, zero);
                    writes.add(w);
                    inFlight.put(off, w);
                    batch.append(zero ? "aio_write -z " + (r.nextBoolean() ? "-u " : "") : "aio_write -P " + pat + " ").append(off).append(' ').append(len)
                            .append('\n');
                    sent++;
                    if (++sinceFlush >= 24) {
                        batch.append("length\nflush\nlength\n");
                        sinceFlush = 0;
                    }
                }
                if (batch.length() > 0) {
                    stdin.write(batch.toString().getBytes(StandardCharsets.UTF_8));
                    stdin.flush();
                }
                Thread.sleep(1);
            }
        } catch (IOException broken) {
            // the child exited
        }
        assertTrue(p.isAlive(), "the child was still running when killed");
        new ProcessBuilder("kill", "-9", String.valueOf(p.pid())).start().waitFor();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(137, p.exitValue(), "killed by SIGKILL");
        reader.join(10_000);
        for (String l; (l = lines.poll()) != null; ) {
            Matcher m = WROTE.matcher(l);
            if (m.matches()) {
                Write w = inFlight.remove(Long.parseLong(m.group(2)));
                if (w != null) completionOrder.add(w.id());
            } else if (l.endsWith("MiB")) {
                markerPositions.add(completionOrder.size());
            }
        }
        // the last completed flush: pairs of markers (start, end)
        int durableCount = 0;
        int flushes = markerPositions.size() / 2;
        if (flushes > 0) durableCount = markerPositions.get(2 * (flushes - 1));
        boolean[] durable = new boolean[writes.size()];
        for (int i = 0; i < durableCount; i++) durable[completionOrder.get(i)] = true;

        Qemu.Result c;
        if (lazy) {
            c = Qemu.run("qemu-img", "check", "-r", "all", img.toString());
            assertEquals(0, c.exit(), "check -r all after kill -9 (lazy refcounts):\n" + c.out());
        } else {
            c = Qemu.check(img, 0, 3);
        }
        Path raw = dir.resolve(img.getFileName() + ".raw");
        Qemu.ok("qemu-img", "convert", "-f", "qcow2", "-O", "raw", img.toString(), raw.toString());
        verify(Files.readAllBytes(raw), writes, durable, seed);
        Files.deleteIfExists(raw);
        Files.deleteIfExists(img);
        return "seed=" + seed + " cs=" + cs + " sent=" + sent + " completed=" + completionOrder.size() + " flushes=" + flushes + " durable="
                + durableCount + " check=" + c.exit();
    }

    private static boolean overlaps(java.util.Map<Long, Write> inFlight, long off, int len) {
        for (Write w : inFlight.values()) {
            if (off < w.off() + w.len() && w.off() < off + len) return true;
        }
        return false;
    }

    /**
     * Per sector: the writes touching it in issue order (no two of them were ever in flight at the
     * same time, so issue order is completion order). The last durable one must be there, or a
     * later one; with no durable write, zero or any of them.
     */
    private static void verify(byte[] disk, List<Write> writes, boolean[] durable, long seed) {
        int sectors = (int) (SIZE / SECTOR);
        int[] lastDurable = new int[sectors];
        java.util.Arrays.fill(lastDurable, -1);
        for (Write w : writes) {
            if (!durable[w.id()]) continue;
            for (long s = w.off() / SECTOR; s < (w.off() + w.len()) / SECTOR; s++) lastDurable[(int) s] = Math.max(lastDurable[(int) s], w.id());
        }
        // allowed values per sector: the durable write's pattern (or 0 with none) plus every later write's
        List<List<Integer>> later = new ArrayList<>(sectors);
        for (int i = 0; i < sectors; i++) later.add(null);
        for (Write w : writes) {
            for (long s = w.off() / SECTOR; s < (w.off() + w.len()) / SECTOR; s++) {
                if (w.id() > lastDurable[(int) s]) {
                    if (later.get((int) s) == null) later.set((int) s, new ArrayList<>());
                    later.get((int) s).add(w.pattern());
                }
            }
        }
        for (int s = 0; s < sectors; s++) {
            int base = s * SECTOR;
            int v = disk[base] & 0xff;
            for (int i = 1; i < SECTOR; i++) {
                if ((disk[base + i] & 0xff) != v) fail("seed " + seed + ": sector " + s + " is torn");
            }
            int expect = lastDurable[s] < 0 ? 0 : writes.get(lastDurable[s]).pattern();
            if (v == expect) continue;
            List<Integer> l = later.get(s);
            if (l != null && l.contains(v)) continue;
            fail("seed " + seed + ": sector " + s + " (offset " + (long) base + ") holds " + v + ", expected " + expect + " (last write before the"
                    + " last completed flush: " + (lastDurable[s] < 0 ? "none" : writes.get(lastDurable[s])) + ") or one of the later writes " + l);
        }
    }
}
