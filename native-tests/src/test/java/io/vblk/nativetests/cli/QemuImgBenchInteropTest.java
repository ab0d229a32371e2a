package io.vblk.nativetests.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.nativetests.Requirements;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * vblk bench against qemu-img bench on real files: same first line, same "Run completed" form,
 * same exit code and message when the wrap-around walks off the end; and the JSON counters of the
 * Linux AIO paths account for every request (small counts: this checks behaviour, not speed).
 */
class QemuImgBenchInteropTest {
    @TempDir
    Path dir;
    Path file;

    @BeforeEach
    void setUp() throws Exception {
        Requirements.require(Requirements.onPath("qemu-img"), "qemu-img (qemu-utils) is not installed");
        file = dir.resolve("b.raw");
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(8 << 20);
        }
    }

    private void compare(String... args) throws Exception {
        List<String> q = new ArrayList<>(List.of("qemu-img", "bench"));
        q.addAll(List.of(args));
        q.add(file.toString());
        Proc qr = Proc.run(q, java.util.Map.of());
        List<String> v = new ArrayList<>(List.of("bench"));
        v.addAll(List.of(args));
        v.add(file.toString());
        Proc vr = Proc.vblk(v.toArray(String[]::new));
        assertEquals(qr.rc(), vr.rc(), "exit code for " + List.of(args) + ": " + qr.err() + " / " + vr.err());
        String[] ql = qr.out().split("\n");
        String[] vl = vr.out().split("\n");
        assertEquals(ql[0], vl[0], "first line");
        assertEquals(ql.length, vl.length, qr.out() + " / " + vr.out());
        if (qr.rc() == 0) {
            assertTrue(ql[1].matches("Run completed in \\d+\\.\\d{3} seconds\\."), ql[1]);
            assertTrue(vl[1].matches("Run completed in \\d+\\.\\d{3} seconds\\."), vl[1]);
        } else {
            assertEquals(qr.errWithoutProgram(), vr.errWithoutProgram());
        }
    }

    @Test
    void sameLinesAsQemuImgBench() throws Exception {
        compare("-f", "raw", "-c", "2000", "-d", "8");
        compare("-f", "raw", "-w", "-c", "500", "-d", "4", "-s", "8k", "-S", "12k", "-o", "512", "--pattern=5");
        compare("-f", "raw", "-c", "300", "-d", "16", "-t", "none", "-i", "native");
        compare("-f", "raw", "-c", "4000", "-d", "4", "-s", "4k", "-S", "3k");   // wraps off the end: both fail
        compare("-f", "raw", "-c", "10", "-o", "8M");                         // first request past the end
    }

    @Test
    void nullDeviceLineMatchesQemuNullCo() throws Exception {
        Proc q = Proc.run("qemu-img", "bench", "--image-opts", "driver=null-co,size=1G", "-c", "1000", "-d", "32");
        Proc v = Proc.vblk("bench", "-f", "null", "-c", "1000", "-d", "32", "1G");
        assertEquals(0, q.rc(), q.err());
        assertEquals(0, v.rc(), v.err());
        assertEquals(q.out().lines().findFirst().orElseThrow(), v.out().lines().findFirst().orElseThrow());
    }

    private static long field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\": (\\d+)").matcher(json);
        assertTrue(m.find(), name + " in " + json);
        return Long.parseLong(m.group(1));
    }

    @Test
    void linuxAioCountersAccountForEveryRequest() throws Exception {
        Requirements.require(Requirements.onPath("qemu-img"), "qemu-img");
        for (String path : new String[] {"block", "aio"}) {
            for (String rw : new String[] {"", "-w"}) {
                List<String> a = new ArrayList<>(List.of("bench", "-f", "raw", "-t", "none", "-i", "native", "--path", path,
                        "-c", "3000", "-d", "32", "--random", "--output=json"));
                if (!rw.isEmpty()) a.add(rw);
                a.add(file.toString());
                Proc r = Proc.vblk(a.toArray(String[]::new));
                assertEquals(0, r.rc(), r.err());
                String j = r.out().trim();
                assertEquals(3000, field(j, "ops"), j);
                assertEquals(3000, field(j, "iocbs"), "one iocb per request: " + j);
                long submits = field(j, "io_submit_calls");
                assertTrue(submits >= 1 && submits <= 3000, j);
                assertTrue(j.contains("\"iocbs_per_submit\": ") && j.contains("\"completions_per_reap\": "), j);
            }
        }
    }

    @Test
    void threadsPathHasNoAioCounters() throws Exception {
        Proc r = Proc.vblk("bench", "-f", "raw", "-c", "200", "-d", "4", "--output=json", file.toString());
        assertEquals(0, r.rc(), r.err());
        assertEquals(0, field(r.out(), "io_submit_calls"));
        assertTrue(!r.out().contains("iocbs_per_submit"), r.out());
    }
}
