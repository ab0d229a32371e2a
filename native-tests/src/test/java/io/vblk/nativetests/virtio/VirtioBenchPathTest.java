package io.vblk.nativetests.virtio;

import io.vblk.cli.BenchCommand;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code vblk bench --path virtio}: a small run (not for figures) writes a pattern through the
 * virtio-blk device onto an O_DIRECT raw file with Linux AIO; the file holds the pattern afterwards
 * and the JSON shows io_submit batching. A read run on the null driver completes every request.
 */
class VirtioBenchPathTest {
    @TempDir
    Path dir;

    private static String bench(String... args) throws Exception {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        int rc = BenchCommand.run(args, new PrintStream(o, true, StandardCharsets.UTF_8), new PrintStream(e, true, StandardCharsets.UTF_8));
        String out = o.toString(StandardCharsets.UTF_8);
        assertEquals(0, rc, out + e.toString(StandardCharsets.UTF_8));
        return out;
    }

    @Test
    void writesThroughTheDeviceReachTheFile() throws Exception {
        Path img = dir.resolve("b.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        String out = bench("-f", "raw", "-w", "--pattern=171", "-c", "1024", "-d", "32", "-s", "8192",
                "-t", "none", "-i", "native", "--path", "virtio", "--output=json", img.toString());
        assertTrue(out.contains("\"ops\""), out);
        assertTrue(out.matches("(?s).*\"io_submit_calls\"\\s*:\\s*[1-9].*"), out);
        byte[] data = Files.readAllBytes(img);
        for (int i = 0; i < 1024 * 8192; i += 4093) assertEquals((byte) 171, data[i], "byte " + i);
        assertEquals(0, data[1024 * 8192], "nothing past the last request");
    }

    @Test
    void readsOnNullComplete() throws Exception {
        String out = bench("-f", "null", "-c", "20000", "-d", "64", "--path", "virtio", "--random", "64M");
        assertFalse(out.isEmpty());
    }

    /**
     * The ring holds 1024 descriptors, 341 three-descriptor chains: at depth 500 the guest side
     * runs out of descriptors, and the slots that found the ring full wait for completions. Every
     * request still completes, exactly as many as asked for.
     */
    @Test
    void depthBeyondTheRingStallsAndCompletesEveryRequest() throws Exception {
        String out = bench("-f", "null", "-c", "30000", "-d", "500", "--path", "virtio", "--output=json", "64M");
        assertTrue(out.matches("(?s).*\"ops\": 30000,.*"), out);
    }

    /** With --flush-interval the runner uses coroutine workers (flush waits for a drained queue). */
    @Test
    void flushIntervalRunsThroughTheDevice() throws Exception {
        Path img = dir.resolve("f.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        String out = bench("-f", "raw", "-w", "-c", "2000", "-d", "16", "--flush-interval=100",
                "--path", "virtio", "--output=json", img.toString());
        assertTrue(out.matches("(?s).*\"ops\": 2000,.*"), out);
    }
}
