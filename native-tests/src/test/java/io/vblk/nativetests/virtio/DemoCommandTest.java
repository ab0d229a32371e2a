package io.vblk.nativetests.virtio;

import io.vblk.cli.DemoCommand;
import io.vblk.nativetests.Requirements;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vblk demo} end to end (qcow2 on an O_DIRECT file with Linux AIO), shortened to 2 seconds; qemu-img checks the image. */
class DemoCommandTest {
    @TempDir
    Path dir;

    @Test
    void demoRunsVerifiesAndReports() throws Exception {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        long t0 = System.nanoTime();
        int rc = DemoCommand.run(new String[] {"-s", "64M", "-t", "2", dir.toString()},
                new PrintStream(o, true, StandardCharsets.UTF_8), new PrintStream(e, true, StandardCharsets.UTF_8));
        String out = o.toString(StandardCharsets.UTF_8);
        System.out.print(out);
        System.err.print(e.toString(StandardCharsets.UTF_8));
        assertEquals(0, rc, out + e);
        assertTrue((System.nanoTime() - t0) / 1e9 < 60, "under a minute");
        assertTrue(out.contains("IOPS"), out);
        assertTrue(out.contains("latency: p50"), out);
        assertTrue(out.contains("every byte matches what was written"), out);
        assertFalse(out.contains("BAD BYTES"), out);
        assertTrue(out.contains("io_submit: ") && out.contains("iocbs per call"), "ran on Linux AIO: " + out);
        assertTrue(out.matches("(?s).*\\n\\s+\\d+\\.\\d s .*requests.*"), "a progress line: " + out);
        // qcow2 is in the build: the demo ran on qcow2 and checked the image with vblk's checker
        assertTrue(out.contains("qcow2 -> file (Linux AIO, O_DIRECT)"), out);
        assertTrue(out.contains("No errors were found on the image."), out);
        Path img = dir.resolve("demo.qcow2");
        assertTrue(Files.exists(img), "the image stays in a DIR the user gave");
        // and QEMU agrees
        boolean haveQemuImg = Files.isExecutable(Path.of("/usr/bin/qemu-img"));
        Requirements.require(haveQemuImg, "qemu-img is not installed");
        Process p = new ProcessBuilder("qemu-img", "check", img.toString()).redirectErrorStream(true).start();
        String check = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), check);
        assertTrue(check.contains("No errors were found on the image."), check);
    }

    @Test
    void badArgumentsGetAClearAnswer() {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        int rc = DemoCommand.run(new String[] {"--bogus"}, new PrintStream(o), new PrintStream(e));
        assertEquals(1, rc);
        assertTrue(e.toString().contains("unknown argument '--bogus'"));
        e.reset();
        assertEquals(1, DemoCommand.run(new String[] {"-s"}, new PrintStream(o), new PrintStream(e)));
        assertTrue(e.toString().contains("missing value"));
        o.reset();
        assertEquals(0, DemoCommand.run(new String[] {"--help"}, new PrintStream(o), new PrintStream(e)));
        assertTrue(o.toString().startsWith("usage: vblk demo"));
    }
}
