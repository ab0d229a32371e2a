package io.vblk.nativetests.qcow2tools;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.cli.img.CheckCommand;
import io.vblk.cli.img.CreateCommand;
import io.vblk.cli.img.InfoCommand;
import io.vblk.cli.img.MapCommand;
import io.vblk.nativetests.Requirements;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * vblk's image tools against qemu-img 7.2 on the same files: {@code check} (stdout, JSON, the
 * per-cluster messages and the exit code) on clean, leaky, corrupted and lazy-refcount-dirty
 * images made by qemu-img/qemu-io; {@code check -r all/leaks} results accepted by qemu-img check
 * with the data unchanged; {@code create} images accepted by qemu-img check with the same
 * Formatting line and the same {@code info}; {@code info} and {@code map} byte-identical to
 * qemu-img's on a backing chain with zero and compressed clusters. Runs in the image's directory
 * with relative names, as a user would.
 */
class Qcow2ToolsInteropTest {
    @TempDir
    Path dir;

    record Out(int exit, String out, String err) {}

    @BeforeEach
    void requireQemu() {
        Requirements.require(Files.isExecutable(Path.of("/usr/bin/qemu-img")) && Files.isExecutable(Path.of("/usr/bin/qemu-io")),
                "qemu-img and qemu-io (qemu-utils) are installed");
    }

    /** Runs an external command in {@link #dir}. */
    Out sh(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).start();
        byte[] o = p.getInputStream().readAllBytes();
        byte[] e = p.getErrorStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timeout: " + String.join(" ", cmd));
        return new Out(p.exitValue(), new String(o, StandardCharsets.UTF_8), new String(e, StandardCharsets.UTF_8));
    }

    void ok(String... cmd) throws Exception {
        Out r = sh(cmd);
        assertEquals(0, r.exit, String.join(" ", cmd) + ": " + r.out + r.err);
    }

    /** Runs a vblk tool with file names resolved in {@link #dir} (relative names kept in output). */
    Out vblk(String tool, String... args) throws Exception {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        String[] a = args.clone();
        // the tools print the name they are given: pass absolute paths and map them back to relative
        for (int i = 0; i < a.length; i++) {
            boolean optionValue = i > 0 && (a[i - 1].equals("-b") || a[i - 1].equals("-o"));
            if (!optionValue && !a[i].startsWith("-") && (a[i].contains(".qcow2") || a[i].contains(".raw"))) {
                a[i] = dir.resolve(a[i]).toString();
            }
        }
        int rc;
        try (PrintStream po = new PrintStream(o, true, StandardCharsets.UTF_8); PrintStream pe = new PrintStream(e, true, StandardCharsets.UTF_8)) {
            rc = switch (tool) {
                case "check" -> CheckCommand.run(a, po, pe);
                case "info" -> InfoCommand.run(a, po, pe);
                case "map" -> MapCommand.run(a, po, pe);
                case "create" -> CreateCommand.run(a, po, pe);
                default -> throw new IllegalArgumentException(tool);
            };
        }
        String prefix = dir.toString() + "/";
        // with the absolute image name, a relative backing name resolves to an absolute "actual
        // path", which qemu-img run in the directory does not print: undo that after stripping
        String out = o.toString(StandardCharsets.UTF_8).replace(prefix, "")
                .replaceAll("(?m)^backing file: (\\S+) \\(actual path: \\1\\)$", "backing file: $1");
        return new Out(rc, out, e.toString(StandardCharsets.UTF_8).replace(prefix, ""));
    }

    /** Messages without the program-name prefixed lines (qemu-img: / vblk:). */
    static List<String> messages(String err) {
        return err.lines().filter(l -> !l.startsWith("qemu-img:") && !l.startsWith("vblk:")).collect(Collectors.toList());
    }

    void poke16(String file, long offset, int value) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(file).toFile(), "rw")) {
            f.seek(offset);
            f.writeShort(value);
        }
    }

    void poke64(String file, long offset, long value) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(file).toFile(), "rw")) {
            f.seek(offset);
            f.writeLong(value);
        }
    }

    long peek64(String file, long offset) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(file).toFile(), "r")) {
            f.seek(offset);
            return f.readLong();
        }
    }

    /** A 64 MiB image (default layout: reftable 0x10000, refblock 0x20000, L1 0x30000, L2 0x40000) with 1 MiB + 64 KiB of data. */
    void makeImage(String name, String... createOpts) throws Exception {
        List<String> c = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", "qcow2"));
        c.addAll(List.of(createOpts));
        c.addAll(List.of(name, "64M"));
        ok(c.toArray(String[]::new));
        ok("qemu-io", "-c", "write -P 1 0 1M", "-c", "write -P 2 8M 64k", "-c", "write -z 16M 128k", name);
    }

    void assertSameCheck(String file, String... opts) throws Exception {
        for (String output : new String[] {"human", "json"}) {
            List<String> q = new ArrayList<>(List.of("qemu-img", "check", "--output=" + output));
            q.addAll(List.of(opts));
            q.add(file);
            List<String> v = new ArrayList<>(List.of("--output=" + output));
            v.addAll(List.of(opts));
            v.add(file);
            Out qr = sh(q.toArray(String[]::new));
            Out vr = vblk("check", v.toArray(String[]::new));
            assertEquals(qr.exit, vr.exit, "exit code of check " + output + " " + file + "\nqemu: " + qr.err + "\nvblk: " + vr.err);
            assertEquals(qr.out, vr.out, "stdout of check " + output + " " + file);
            assertEquals(messages(qr.err), messages(vr.err), "messages of check " + file);
        }
    }

    @Test
    void checkAgreesWithQemuOnCleanLeakyAndCorruptedImages() throws Exception {
        makeImage("clean.qcow2");
        assertSameCheck("clean.qcow2");

        // leaks: raise refcounts of two clusters inside the (grown) file that nothing references
        Files.copy(dir.resolve("clean.qcow2"), dir.resolve("leaky.qcow2"));
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("leaky.qcow2").toFile(), "rw")) {
            f.setLength(2 << 20);
        }
        poke16("leaky.qcow2", 0x20000 + 2 * 25, 1);
        poke16("leaky.qcow2", 0x20000 + 2 * 26, 3);
        assertSameCheck("leaky.qcow2");
        assertEquals(3, vblk("check", "leaky.qcow2").exit);

        // corruption: a data cluster's refcount dropped to 0 (mismatch + COPIED error)
        Files.copy(dir.resolve("clean.qcow2"), dir.resolve("bad.qcow2"));
        poke16("bad.qcow2", 0x20000 + 2 * 5, 0);
        assertSameCheck("bad.qcow2");
        assertEquals(2, vblk("check", "bad.qcow2").exit);

        // COPIED cleared on a refcount-1 L2 entry
        Files.copy(dir.resolve("clean.qcow2"), dir.resolve("copied.qcow2"));
        poke64("copied.qcow2", 0x40000, peek64("copied.qcow2", 0x40000) & ~(1L << 63));
        assertSameCheck("copied.qcow2");

        // compressed clusters, with a normal cluster among them
        ok("qemu-img", "convert", "-c", "-O", "qcow2", "clean.qcow2", "compressed.qcow2");
        ok("qemu-io", "-c", "write -P 3 100k 4k", "compressed.qcow2");
        assertSameCheck("compressed.qcow2");

        // small clusters and 1-bit / 64-bit refcounts
        makeImage("small.qcow2", "-o", "cluster_size=512,refcount_bits=1");
        assertSameCheck("small.qcow2");
        makeImage("wide.qcow2", "-o", "cluster_size=4k,refcount_bits=64");
        assertSameCheck("wide.qcow2");

        // internal snapshots sharing L2 tables and data (refcounts 2, COPIED cleared), then a
        // refcount dropped below the number of snapshots using the cluster; 32/1024 = 3.125 %
        // also checks glibc's half-even "%.2f"
        ok("qemu-img", "create", "-q", "-f", "qcow2", "snap.qcow2", "64M");
        ok("qemu-io", "-c", "write -P 1 0 2M", "snap.qcow2");
        ok("qemu-img", "snapshot", "-c", "s1", "snap.qcow2");
        ok("qemu-io", "-c", "write -P 2 64k 64k", "snap.qcow2");
        ok("qemu-img", "snapshot", "-c", "s2", "snap.qcow2");
        assertSameCheck("snap.qcow2");
        poke16("snap.qcow2", 0x20000 + 2 * 6, 1);
        assertSameCheck("snap.qcow2");

        // raw has no check
        ok("qemu-img", "create", "-q", "-f", "raw", "plain.raw", "1M");
        assertEquals(63, vblk("check", "plain.raw").exit);
        assertEquals(63, sh("qemu-img", "check", "plain.raw").exit);
    }

    @Test
    void checkNeverWritesWithoutRepair() throws Exception {
        makeImage("bad.qcow2");
        poke16("bad.qcow2", 0x20000 + 2 * 5, 0);
        byte[] before = Files.readAllBytes(dir.resolve("bad.qcow2"));
        assertEquals(2, vblk("check", "bad.qcow2").exit);
        assertArrayEquals(before, Files.readAllBytes(dir.resolve("bad.qcow2")));
    }

    @Test
    void repairResultsAreAcceptedByQemuAndKeepTheData() throws Exception {
        makeImage("orig.qcow2");
        // corrupted: refcount 0 on a data cluster -> -r all rebuilds the refcount structure
        Files.copy(dir.resolve("orig.qcow2"), dir.resolve("bad.qcow2"));
        poke16("bad.qcow2", 0x20000 + 2 * 5, 0);
        Files.copy(dir.resolve("bad.qcow2"), dir.resolve("bad-q.qcow2"));
        Out v = vblk("check", "-r", "all", "bad.qcow2");
        assertEquals(0, v.exit, v.out + v.err);
        assertTrue(v.out.startsWith("The following inconsistencies were found and repaired:"), v.out);
        assertEquals(0, sh("qemu-img", "check", "bad.qcow2").exit);
        ok("qemu-img", "compare", "orig.qcow2", "bad.qcow2");
        // same report and same result as qemu-img's own repair
        Out q = sh("qemu-img", "check", "-r", "all", "bad-q.qcow2");
        assertEquals(q.out.replace("bad-q", "bad"), v.out);
        assertEquals(Files.size(dir.resolve("bad-q.qcow2")), Files.size(dir.resolve("bad.qcow2")));

        // leaks: -r leaks
        Files.copy(dir.resolve("orig.qcow2"), dir.resolve("leaky.qcow2"));
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("leaky.qcow2").toFile(), "rw")) {
            f.setLength(2 << 20);
        }
        poke16("leaky.qcow2", 0x20000 + 2 * 25, 2);
        v = vblk("check", "-r", "leaks", "leaky.qcow2");
        assertEquals(0, v.exit, v.out + v.err);
        assertTrue(v.err.contains("Repairing cluster 25 refcount=2 reference=0"), v.err);
        assertEquals(0, sh("qemu-img", "check", "leaky.qcow2").exit);
        ok("qemu-img", "compare", "orig.qcow2", "leaky.qcow2");
    }

    @Test
    void lazyRefcountImageKilledMidWriteIsRepairedByCheckAll() throws Exception {
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "lazy.qcow2", "64M");
        Out k = sh("qemu-io", "-c", "write -P 5 0 3M", "-c", "write -P 6 40M 1M", "-c", "sigraise 9", "lazy.qcow2");
        assertNotEquals(0, k.exit);
        assertTrue(vblk("info", "lazy.qcow2").out.contains("cleanly shut down: no"));
        assertSameCheck("lazy.qcow2");
        Out v = vblk("check", "-r", "all", "lazy.qcow2");
        assertEquals(0, v.exit, v.out + v.err);
        Out q = sh("qemu-img", "check", "lazy.qcow2");
        assertEquals(0, q.exit, q.out + q.err);
        assertFalse(vblk("info", "lazy.qcow2").out.contains("cleanly shut down"), "dirty bit cleared");
        ok("qemu-io", "-c", "read -P 5 0 3M", "-c", "read -P 6 40M 1M", "lazy.qcow2");
    }

    @Test
    void createdImagesAreAcceptedByQemu() throws Exception {
        ok("qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "32M");
        String[][] variants = {
            {"-f", "qcow2", "%s", "64M"},
            {"-f", "qcow2", "-o", "compat=0.10", "%s", "1G"},
            {"-f", "qcow2", "-o", "compat=v3,preallocation=metadata,cluster_size=4k,lazy_refcounts=on,refcount_bits=8", "%s", "20M"},
            {"-f", "qcow2", "-o", "preallocation=falloc", "%s", "4M"},
            {"-f", "qcow2", "-o", "preallocation=full,cluster_size=512", "%s", "1M"},
            {"-f", "qcow2", "-o", "cluster_size=2M", "%s", "100M"},
            {"-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "%s"},
            {"-f", "raw", "%s", "1M"},
            {"-f", "raw", "-o", "preallocation=full", "%s", "1M"},
        };
        int i = 0;
        for (String[] v : variants) {
            String ext = v[1].equals("raw") ? ".raw" : ".qcow2";
            String ours = "v" + i + ext;
            String theirs = "q" + i + ext;
            i++;
            String[] a = v.clone();
            String[] b = v.clone();
            for (int j = 0; j < a.length; j++) {
                if (a[j].equals("%s")) {
                    a[j] = ours;
                    b[j] = theirs;
                }
            }
            Out vr = vblk("create", a);
            assertEquals(0, vr.exit, String.join(" ", a) + ": " + vr.err);
            List<String> qc = new ArrayList<>(List.of("qemu-img", "create"));
            qc.addAll(List.of(b));
            Out qr = sh(qc.toArray(String[]::new));
            assertEquals(0, qr.exit, qr.err);
            assertEquals(qr.out.replace(theirs, ours), vr.out, "Formatting line of " + String.join(" ", a));
            if (ext.equals(".qcow2")) {
                Out chk = sh("qemu-img", "check", ours);
                assertEquals(0, chk.exit, ours + ": " + chk.out + chk.err);
            }
            Out qi = sh("qemu-img", "info", "--output=json", ours);
            Out vi = vblk("info", "--output=json", ours);
            assertEquals(qi.out, vi.out, "info of " + ours);
            assertEquals(sh("qemu-img", "info", "--output=json", theirs).out.replace("\"virtual-size\"", "\"virtual-size\"")
                    .replaceAll("\"actual-size\": \\d+", "").replace(theirs, ours),
                    qi.out.replaceAll("\"actual-size\": \\d+", ""), "same header fields as qemu-img's image for " + ours);
        }
        // errors: one line, exit 1
        Out e = vblk("create", "-f", "qcow2", "nosize.qcow2");
        assertEquals(1, e.exit);
        assertEquals("vblk: nosize.qcow2: Image creation needs a size parameter\n", e.err);
        e = vblk("create", "-f", "qcow2", "-o", "cluster_size=3000", "badcs.qcow2", "1M");
        assertEquals(1, e.exit);
        assertEquals(1, e.err.lines().count(), e.err);
    }

    @Test
    void infoAndMapMatchQemuOnABackingChain() throws Exception {
        ok("qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "64M");
        ok("qemu-io", "-c", "write -P 1 0 1M", "-c", "write -P 2 8M 64k", "base.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "mid.qcow2");
        ok("qemu-io", "-c", "write -z 64k 128k", "-c", "write -P 7 2M 64k", "-c", "write -z -u 8M 64k", "mid.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2");
        ok("qemu-io", "-c", "write -P 9 3M 4k", "top.qcow2");
        ok("qemu-img", "convert", "-c", "-O", "qcow2", "base.qcow2", "comp.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "pre.qcow2", "8M");
        ok("qemu-img", "create", "-q", "-f", "raw", "plain.raw", "4M");
        ok("qemu-io", "-f", "raw", "-c", "write -P 1 1M 64k", "plain.raw");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "snap.qcow2", "16M");
        ok("qemu-io", "-c", "write -P 4 0 1M", "snap.qcow2");
        ok("qemu-img", "snapshot", "-c", "first", "snap.qcow2");
        ok("qemu-img", "snapshot", "-c", "second", "snap.qcow2");
        for (String f : new String[] {"base.qcow2", "mid.qcow2", "top.qcow2", "comp.qcow2", "pre.qcow2", "plain.raw", "snap.qcow2"}) {
            for (String o : new String[] {"human", "json"}) {
                for (String tool : new String[] {"info", "map"}) {
                    Out q = sh("qemu-img", tool, "--output=" + o, f);
                    Out v = vblk(tool, "--output=" + o, f);
                    assertEquals(q.exit, v.exit, tool + " " + o + " " + f + ": " + v.err);
                    assertEquals(q.out, v.out, tool + " " + o + " " + f);
                }
            }
        }
    }

    /**
     * Preallocated zero clusters (ZERO flag with a host cluster, "zero-alloc") are reported with
     * their host offset, as qemu-img map does: on a metadata-preallocated image zeroed by qemu-io,
     * and on a plain image whose data clusters were zeroed in place (zero-alloc runs between data
     * clusters, split where the host clusters stop being contiguous).
     */
    @Test
    void mapShowsTheOffsetOfPreallocatedZeroClusters() throws Exception {
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "prez.qcow2", "8M");
        ok("qemu-io", "-c", "write -z 0 64k", "-c", "write -P 3 1M 64k", "-c", "write -z 1M 128k", "-c", "write -z 4M 64k", "prez.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "zin.qcow2", "8M");
        ok("qemu-io", "-c", "write -P 1 0 256k", "-c", "write -P 2 1M 64k", "-c", "write -P 4 2M 64k",
                "-c", "write -z 64k 128k", "-c", "write -z 1M 64k", "-c", "write -z 2M 64k", "zin.qcow2");
        for (String f : new String[] {"prez.qcow2", "zin.qcow2"}) {
            Out q = sh("qemu-img", "map", "--output=json", f);
            assertEquals(0, q.exit, q.err);
            // the images really have zero-alloc extents (zero, not data, with an offset)
            assertTrue(q.out.lines().anyMatch(l -> l.contains("\"zero\": true, \"data\": false, \"offset\": ")), q.out);
            Out v = vblk("map", "--output=json", f);
            assertEquals(0, v.exit, v.err);
            assertEquals(q.out, v.out, "map --output=json " + f);
            assertEquals(sh("qemu-img", "map", f).out, vblk("map", f).out, "map " + f);
            // a window of the image, cutting extents at both ends, and a window past the end
            for (String[] w : new String[][] {{"--start-offset=96k", "--max-length=1M"}, {"--start-offset=1088k"}, {"--start-offset=64M"}}) {
                List<String> args = new java.util.ArrayList<>(List.of("--output=json"));
                args.addAll(List.of(w));
                args.add(f);
                List<String> qa = new java.util.ArrayList<>(List.of("qemu-img", "map"));
                qa.addAll(args);
                Out qw = sh(qa.toArray(String[]::new));
                Out vw = vblk("map", args.toArray(String[]::new));
                assertEquals(qw.exit, vw.exit, String.join(" ", args) + ": " + vw.err);
                assertEquals(qw.out, vw.out, String.join(" ", args));
            }
        }
        Out bad = vblk("map", "--start-offset=lots", "zin.qcow2");
        assertEquals(1, bad.exit);
        assertTrue(bad.err.contains("Invalid start offset"), bad.err);
    }

    /**
     * The API the qcow2 driver calls on a read-write open of a dirty image, over the real file
     * driver, buffered and O_DIRECT (the checker's aligned read-modify-write path).
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"off", "on"})
    void repairDirtyOverTheFileDriver(String direct) throws Exception {
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4k", "lazy.qcow2", "64M");
        sh("qemu-io", "-c", "write -P 5 0 3M", "-c", "write -P 6 40M 1M", "-c", "write -P 7 1001k 3k", "-c", "sigraise 9", "lazy.qcow2");
        assertEquals(2, sh("qemu-img", "check", "lazy.qcow2").exit);
        io.vblk.block.AioContext ctx = io.vblk.aio.IoThreads.start("repair-dirty");
        try {
            io.vblk.block.BlockNode file = io.vblk.block.BlockNode.open(new io.vblk.block.BlockOptions().put("driver", "file")
                    .put("filename", dir.resolve("lazy.qcow2").toString()).put("cache.direct", direct).put("aio", "threads"));
            String[] error = {null};
            io.vblk.qcow2.Qcow2Header[] hh = {null};
            ctx.run(() -> {
                io.vblk.qcow2.check.CheckFile f = io.vblk.qcow2.check.CheckFile.of(file);
                try {
                    hh[0] = io.vblk.qcow2.check.Qcow2Check.readHeader(f);
                    io.vblk.qcow2.check.Qcow2Check.repairDirty(file, hh[0]);
                } catch (io.vblk.block.BlockException e) {
                    error[0] = e.getMessage();
                } finally {
                    f.close();
                }
                return 0;
            });
            ctx.run(file::close);
            assertNull(error[0], error[0]);
            assertEquals(0, hh[0].incompatibleFeatures & 1, "dirty bit cleared in the header object");
        } finally {
            ctx.close();
        }
        Out q = sh("qemu-img", "check", "lazy.qcow2");
        assertEquals(0, q.exit, q.out + q.err);
        assertFalse(sh("qemu-img", "info", "lazy.qcow2").out.contains("cleanly shut down"));
        ok("qemu-io", "-c", "read -P 5 0 1000k", "-c", "read -P 7 1001k 3k", "-c", "read -P 6 40M 1M", "lazy.qcow2");
    }

    /** Hostile or broken images: one error line naming the problem, exit 1, no stack trace, no write. */
    @Test
    void brokenImagesGiveOneLineErrors() throws Exception {
        makeImage("good.qcow2");
        byte[] good = Files.readAllBytes(dir.resolve("good.qcow2"));
        Files.write(dir.resolve("short.qcow2"), java.util.Arrays.copyOf(good, 50));
        Files.copy(dir.resolve("good.qcow2"), dir.resolve("hugel1.qcow2"));
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("hugel1.qcow2").toFile(), "rw")) {
            f.seek(36);
            f.writeInt(0x7fffffff);
        }
        // a refcount table past the end of the file: QEMU opens it, check reports every cluster,
        // -r all rebuilds the refcount structure; vblk does the same
        Files.copy(dir.resolve("good.qcow2"), dir.resolve("rtfar.qcow2"));
        poke64("rtfar.qcow2", 48, 1L << 40);
        assertSameCheck("rtfar.qcow2");
        Out fix = vblk("check", "-r", "all", "rtfar.qcow2");
        assertEquals(0, fix.exit, fix.out + fix.err);
        assertEquals(0, sh("qemu-img", "check", "rtfar.qcow2").exit);
        ok("qemu-img", "compare", "good.qcow2", "rtfar.qcow2");
        Files.copy(dir.resolve("good.qcow2"), dir.resolve("cbits.qcow2"));
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("cbits.qcow2").toFile(), "rw")) {
            f.seek(20);
            f.writeInt(40);
        }
        for (String name : new String[] {"short.qcow2", "hugel1.qcow2", "cbits.qcow2", "missing.qcow2"}) {
            byte[] before = Files.exists(dir.resolve(name)) ? Files.readAllBytes(dir.resolve(name)) : null;
            for (String tool : new String[] {"check", "info", "map"}) {
                Out v = vblk(tool, "-f", "qcow2", name);
                assertEquals(1, v.exit, tool + " " + name + ": " + v.out + v.err);
                assertEquals(1, v.err.lines().count(), tool + " " + name + ": " + v.err);
                assertTrue(v.err.startsWith("vblk: "), v.err);
                assertFalse(v.err.contains("Exception"), v.err);
                assertEquals(1, sh("qemu-img", tool, "-f", "qcow2", name).exit, "qemu-img agrees that " + name + " cannot be opened");
            }
            Out r = vblk("check", "-r", "all", "-f", "qcow2", name);
            assertEquals(1, r.exit);
            if (before != null) assertArrayEquals(before, Files.readAllBytes(dir.resolve(name)), name + " unchanged");
        }
    }
}
