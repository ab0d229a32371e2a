package io.vblk.nativetests.qcow2proof;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.nativetests.Requirements;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The QEMU peers of the qcow2 proofs: runs qemu-img and qemu-io and asserts on their exit codes
 * ({@code qemu-img check}: 0 clean, 2 corruptions, 3 leaks only; {@code compare}: 0 equal).
 */
final class Qemu {
    private Qemu() {}

    record Result(int exit, String out) {}

    static void require() {
        Requirements.require(Requirements.onPath("qemu-img") && Requirements.onPath("qemu-io"), "qemu-img and qemu-io (qemu-utils) are installed");
    }

    static Result run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("timeout: " + String.join(" ", cmd));
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    static String ok(String... cmd) throws IOException, InterruptedException {
        Result r = run(cmd);
        assertEquals(0, r.exit(), String.join(" ", cmd) + ":\n" + r.out());
        return r.out();
    }

    /** qemu-io with several -c commands; every command must succeed (no "failed"/"Pattern verification failed"). */
    static String io(Path img, String... cmds) throws IOException, InterruptedException {
        List<String> c = new ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
        for (String s : cmds) {
            c.add("-c");
            c.add(s);
        }
        c.add(img.toString());
        Result r = run(c.toArray(String[]::new));
        assertEquals(0, r.exit(), String.join(" ", c) + ":\n" + r.out());
        assertFalse(r.out().contains("failed") || r.out().contains("Pattern verification"), String.join(" ", c) + ":\n" + r.out());
        return r.out();
    }

    /** {@code qemu-img check}; asserts the exit code is one of {@code allowed}; returns the result. */
    static Result check(Path img, int... allowed) throws IOException, InterruptedException {
        Result r = run("qemu-img", "check", "-f", "qcow2", img.toString());
        for (int a : allowed) {
            if (r.exit() == a) return r;
        }
        fail("qemu-img check exit " + r.exit() + " (allowed " + java.util.Arrays.toString(allowed) + "):\n" + r.out());
        return r;
    }

    /** {@code qemu-img check} must exit 0: no corruption and no leak. */
    static void checkClean(Path img) throws IOException, InterruptedException {
        check(img, 0);
    }

    /** {@code qemu-img compare} of the qcow2 image against a raw file must find them identical. */
    static void compare(Path img, Path raw) throws IOException, InterruptedException {
        Result r = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", img.toString(), raw.toString());
        assertEquals(0, r.exit(), "qemu-img compare " + img + " " + raw + ":\n" + r.out());
    }

    /** {@code qemu-img map --output=json}. */
    static String map(Path img) throws IOException, InterruptedException {
        return ok("qemu-img", "map", "-f", "qcow2", "--output=json", img.toString());
    }
}
