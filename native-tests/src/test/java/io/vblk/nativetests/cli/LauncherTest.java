package io.vblk.nativetests.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.nativetests.Requirements;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code ./vblk} launcher as a user runs it: finds the JDK, runs the packaged jar with its
 * lib/ directory (jnr-ffi and the native file driver load from there), exits with the command's
 * code. VBLK_NO_REBUILD keeps it from starting Maven inside the test run.
 */
class LauncherTest {
    @TempDir
    Path dir;

    static Path root() {
        Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath();
        while (p != null && !Files.isExecutable(p.resolve("vblk"))) {
            p = p.getParent();
        }
        return p;
    }

    @Test
    void launcherRunsThePackagedJar() throws Exception {
        Path root = root();
        Requirements.require(root != null && Files.exists(root.resolve("cli/target/vblk-cli.jar")),
                "cli/target/vblk-cli.jar is not built (run mvn package or ./vblk once)");
        String vblk = root.resolve("vblk").toString();
        Map<String, String> env = Map.of("VBLK_NO_REBUILD", "1");
        Proc v = Proc.run(List.of(vblk, "--version"), env);
        assertEquals(0, v.rc(), v.err());
        assertTrue(v.out().startsWith("vblk version "), v.out());

        Path f = dir.resolve("l.raw");
        try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "rw")) {
            r.setLength(1 << 20);
        }
        Proc io = Proc.run(List.of(vblk, "io", "-f", "raw", "-t", "none", "-i", "native", "-c", "write -P 9 0 4k",
                "-c", "read -P 9 0 4k", f.toString()), env);
        assertEquals(0, io.rc(), io.err());
        assertTrue(io.out().startsWith("wrote 4096/4096 bytes at offset 0\n"), io.out());

        Proc bad = Proc.run(List.of(vblk, "io", "-c", "read 0 1", dir.resolve("nope").toString()), env);
        assertEquals(1, bad.rc());
        assertEquals(1, bad.err().lines().count(), bad.err());
    }
}
