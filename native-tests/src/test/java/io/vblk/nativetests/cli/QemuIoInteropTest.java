package io.vblk.nativetests.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.nativetests.Requirements;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * vblk io against qemu-io on real raw files: the same commands print the same lines (timings
 * aside) and exit with the same code, leave byte-identical files, and each tool reads back with
 * pattern verification what the other wrote. Runs with the default cache, with O_DIRECT + Linux
 * AIO, and with O_DIRECT + threads.
 */
class QemuIoInteropTest {
    @TempDir
    Path dir;

    @BeforeEach
    void peers() {
        Requirements.require(Requirements.onPath("qemu-io"), "qemu-io (qemu-utils) is not installed");
    }

    private Path image(String name, long size) throws Exception {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    private static List<String> withCommands(List<String> head, String[] cmds, String file) {
        List<String> a = new ArrayList<>(head);
        for (String c : cmds) {
            a.add("-c");
            a.add(c);
        }
        a.add(file);
        return a;
    }

    private static final String[] SCRIPT = {
        "write -P 0xab 0 4k", "read -P 0xab 0 4k", "read -P 0xac 0 4k", "read -P 0xab 0 8k",
        "write -P 0x11 64k 64k", "read -P 0x11 -s 4k -l 8k 64k 64k", "write -z 72k 4k", "read -P 0 72k 4k",
        "write -z -u 80k 8k", "read -P 0 80k 8k", "write -P 0x41 100k 20", "read -v 100k 40", "read -v 100003 5", "write -P 0x20 100k 2", "write -P 0x7e 101k 1", "read -v 100k 2k", "read -q -v 0 16", "write -P 0x22 1020k 4k", "read 0 0", "read -q 0 512",
        "write -C 0 512",
        "discard 64k 4k", "read -P 0 64k 4k", "read -P 0x11 68k 4k", "read 0 2M", "write 1M 1", "read 1023k 2k", "discard 2M 4k",
        "read 0 abc", "write -u 0 4k", "write -P 0x100 0 4k", "write -z -P 1 0 4k",
        "flush", "length",
    };

    @ParameterizedTest
    @ValueSource(strings = {"", "-t none -i native", "-t none -i threads", "-t writethrough"})
    void sameLinesExitCodeAndDataAsQemuIo(String cacheOpts) throws Exception {
        Path q = image("q.raw", 1 << 20);
        Path v = image("v.raw", 1 << 20);
        List<String> head = new ArrayList<>(List.of("-f", "raw"));
        if (!cacheOpts.isEmpty()) head.addAll(List.of(cacheOpts.split(" ")));
        List<String> qcmd = new ArrayList<>(List.of("qemu-io"));
        qcmd.addAll(withCommands(head, SCRIPT, q.toString()));
        Proc qr = Proc.run(qcmd, java.util.Map.of());
        List<String> vcmd = new ArrayList<>(List.of("io"));
        vcmd.addAll(withCommands(head, SCRIPT, v.toString()));
        Proc vr = Proc.vblk(vcmd.toArray(String[]::new));
        assertEquals(qr.outWithoutTimes().replaceAll("(?m)^\\d+,1,0:00:00\\.\\d\\d,.*$", "MACHINE"),
                vr.outWithoutTimes().replaceAll("(?m)^\\d+,1,0:00:00\\.\\d\\d,.*$", "MACHINE"),
                "stdout, qemu-io stderr was: " + qr.err() + "\nvblk stderr: " + vr.err());
        assertEquals(qr.rc(), vr.rc());
        assertEquals(1, vr.rc(), "the script has failing commands");
        assertArrayEquals(Files.readAllBytes(q), Files.readAllBytes(v), "file contents");
        assertEquals(Files.size(q), Files.size(v));
    }

    @Test
    void eachToolVerifiesWhatTheOtherWrote() throws Exception {
        Path f = image("x.raw", 4 << 20);
        Proc w = Proc.run("qemu-io", "-f", "raw", "-c", "write -P 0x3c 0 1M", "-c", "write -P 0xc3 1M 512", "-c", "write -z 2M 64k", f.toString());
        assertEquals(0, w.rc(), w.err());
        Proc r = Proc.vblk("io", "-f", "raw", "-t", "none", "-i", "native", "-c", "read -P 0x3c 0 1M", "-c", "read -P 0xc3 1M 512",
                "-c", "read -P 0 2M 64k", f.toString());
        assertEquals(0, r.rc(), r.out() + r.err());
        Proc w2 = Proc.vblk("io", "-f", "raw", "-c", "aio_write -P 0x71 3M 4k", "-c", "aio_write -P 0x72 3076k 4k",
                "-c", "aio_write -P 0x73 3080k 1k", "-c", "aio_flush", "-c", "write -P 0x74 3081k 3k", f.toString());
        assertEquals(0, w2.rc(), w2.out() + w2.err());
        Proc r2 = Proc.run("qemu-io", "-f", "raw", "-c", "read -P 0x71 3M 4k", "-c", "read -P 0x72 3076k 4k",
                "-c", "read -P 0x73 3080k 1k", "-c", "read -P 0x74 3081k 3k", f.toString());
        assertEquals(0, r2.rc(), r2.out() + r2.err());
        assertEquals(4, r2.out().lines().filter(l -> l.startsWith("read ")).count(), r2.out());
    }

    @Test
    void qcow2ImageWrittenByVblkIoReadsBackInQemuIoAndChecksClean() throws Exception {
        Requirements.require(Requirements.onPath("qemu-img"), "qemu-img (qemu-utils) is not installed");
        Path f = dir.resolve("x.qcow2");
        assertEquals(0, Proc.run("qemu-img", "create", "-f", "qcow2", f.toString(), "8M").rc());
        String[] cmds = {"write -P 0x5a 0 64k", "write -P 0x11 1M 4k", "write -P 0x12 1028k 512", "write -z 2M 64k",
            "aio_write -P 0x21 3M 4k", "aio_write -P 0x22 5M 4k", "aio_flush", "discard 0 64k", "read -P 0 0 64k",
            "read -P 0x11 1M 4k", "read -P 0x21 3M 4k", "read 0 9M"};
        List<String> v = new ArrayList<>(List.of("io"));
        v.addAll(withCommands(List.of("-t", "none", "-i", "native"), cmds, f.toString()));
        Proc vr = Proc.vblk(v.toArray(String[]::new));
        Path g = dir.resolve("y.qcow2");
        assertEquals(0, Proc.run("qemu-img", "create", "-f", "qcow2", g.toString(), "8M").rc());
        List<String> q = new ArrayList<>(List.of("qemu-io"));
        q.addAll(withCommands(List.of(), cmds, g.toString()));
        Proc qr = Proc.run(q, java.util.Map.of());
        // the two aio_writes may complete in either order: compare the lines as multisets
        assertEquals(qr.outWithoutTimes().lines().sorted().toList(), vr.outWithoutTimes().lines().sorted().toList(), vr.err());
        assertEquals(qr.rc(), vr.rc());
        Proc check = Proc.run("qemu-img", "check", f.toString());
        assertEquals(0, check.rc(), check.out() + check.err());
        Proc back = Proc.run("qemu-io", "-f", "qcow2", "-c", "read -P 0 0 64k", "-c", "read -P 0x11 1M 4k",
                "-c", "read -P 0x12 1028k 512", "-c", "read -P 0 2M 64k", "-c", "read -P 0x21 3M 4k", "-c", "read -P 0x22 5M 4k",
                f.toString());
        assertEquals(0, back.rc(), back.out());
        Proc cmp = Proc.run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", f.toString(), g.toString());
        assertEquals(0, cmp.rc(), cmp.out() + cmp.err());
    }

    @Test
    void openErrorsMatchQemuIo() throws Exception {
        String missing = dir.resolve("missing.raw").toString();
        Proc q = Proc.run("qemu-io", "-f", "raw", "-c", "read 0 1", missing);
        Proc v = Proc.vblk("io", "-f", "raw", "-c", "read 0 1", missing);
        assertEquals(q.rc(), v.rc());
        assertEquals(1, v.err().lines().count(), v.err());
        org.junit.jupiter.api.Assertions.assertTrue(v.err().startsWith("vblk: can't open device " + missing + ": "), v.err());
        org.junit.jupiter.api.Assertions.assertTrue(v.err().contains("No such file or directory"), v.err());
    }
}
